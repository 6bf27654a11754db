"""DINOv2: hub state-dict mapping and hub forward semantics vs an independent pure-torch ViT."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gpic_lab.errors import UsageError  # noqa: E402
from gpic_lab.models import dinov2  # noqa: E402

DIM, HEADS, DEPTH, GRID, PATCH = 32, 2, 2, 37, 14


def hub_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny random state dict with dinov2_vitl14_pretrain.pth key names and shapes (scaled down)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {"cls_token": r(1, 1, DIM, scale=1.0), "pos_embed": r(1, 1 + GRID * GRID, DIM, scale=1.0),
             "mask_token": r(1, DIM), "patch_embed.proj.weight": r(DIM, 3, PATCH, PATCH, scale=0.05),
             "patch_embed.proj.bias": r(DIM), "norm.weight": 1 + r(DIM), "norm.bias": r(DIM)}
    for i in range(DEPTH):
        p = f"blocks.{i}."
        state.update({p + "norm1.weight": 1 + r(DIM), p + "norm1.bias": r(DIM),
                      p + "attn.qkv.weight": r(3 * DIM, DIM), p + "attn.qkv.bias": r(3 * DIM),
                      p + "attn.proj.weight": r(DIM, DIM), p + "attn.proj.bias": r(DIM),
                      p + "ls1.gamma": 0.5 + r(DIM).abs(), p + "norm2.weight": 1 + r(DIM), p + "norm2.bias": r(DIM),
                      p + "mlp.fc1.weight": r(4 * DIM, DIM), p + "mlp.fc1.bias": r(4 * DIM),
                      p + "mlp.fc2.weight": r(DIM, 4 * DIM), p + "mlp.fc2.bias": r(DIM),
                      p + "ls2.gamma": 0.5 + r(DIM).abs()})
    return state


def hub_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Independent re-implementation of dinov2 hub DinoVisionTransformer.forward (non-register, offset 0.1)."""
    F = torch.nn.functional
    b, _, h, w = x.shape
    t = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([state["cls_token"].expand(b, -1, -1), t], dim=1)
    pos = state["pos_embed"].float()
    m = int(math.sqrt(pos.shape[1] - 1))
    h0, w0 = h // PATCH, w // PATCH
    if h0 * w0 == m * m and h == w:  # hub: no interpolation at the native grid
        t = t + pos
    else:
        grid = pos[:, 1:].reshape(1, m, m, DIM).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic", antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, DIM)
        t = t + torch.cat([pos[:, :1], grid], dim=1)
    hd = DIM // HEADS
    for i in range(DEPTH):
        p = f"blocks.{i}."
        y = F.layer_norm(t, (DIM,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps=1e-6)
        qkv = F.linear(y, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        qkv = qkv.reshape(b, -1, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * hd ** -0.5, qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        a = a.transpose(1, 2).reshape(b, -1, DIM)
        t = t + state[p + "ls1.gamma"] * F.linear(a, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        y = F.layer_norm(t, (DIM,), state[p + "norm2.weight"], state[p + "norm2.bias"], eps=1e-6)
        y = F.linear(F.gelu(F.linear(y, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        t = t + state[p + "ls2.gamma"] * y
    t = F.layer_norm(t, (DIM,), state["norm.weight"], state["norm.bias"], eps=1e-6)
    return t[:, 0]


def test_hub_state_dict_matches_independent_hub_forward() -> None:
    state = hub_state()
    model = dinov2.load_dinov2(state, device="cpu", num_heads=HEADS)
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ours = dinov2.features_from_tensor(model, x)
    ref = hub_forward(state, x).double().numpy()
    assert ours.dtype == np.float64 and ours.shape == (3, DIM)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_transformers_default_interpolation_differs_from_hub() -> None:
    """The patch matters: stock transformers (size=(16,16)) gives different features than the hub model."""
    from transformers import Dinov2Model

    state = hub_state()
    ours = dinov2.load_dinov2(state, device="cpu", num_heads=HEADS)
    stock = Dinov2Model(ours.config)
    stock.load_state_dict(ours.state_dict())
    stock.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = stock(pixel_values=x).last_hidden_state[:, 0].double().numpy()
    ref = hub_forward(state, x).double().numpy()
    assert np.abs(a - ref).max() > 1e-3
    # at the native 518 resolution no interpolation happens and both agree
    x518 = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(dinov2.features_from_tensor(ours, x518), hub_forward(state, x518).double().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_config_details_from_hub_state() -> None:
    model = dinov2.load_dinov2(hub_state(), device="cpu", num_heads=HEADS)
    cfg = model.config
    assert cfg.layer_norm_eps == 1e-6 and model.layernorm.eps == 1e-6
    assert (cfg.image_size, cfg.patch_size, cfg.num_hidden_layers, cfg.hidden_size) == (518, 14, DEPTH, DIM)
    assert not cfg.use_swiglu_ffn
    gamma = hub_state()["blocks.1.ls2.gamma"]
    assert torch.equal(model.encoder.layer[1].layer_scale2.lambda1.detach(), gamma)


def test_pth_file_and_bad_inputs(tmp_path) -> None:
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(hub_state(), path)
    model = dinov2.load_dinov2(path, device="cpu", num_heads=HEADS)
    x = torch.randn(1, 3, 224, 224)
    np.testing.assert_allclose(dinov2.features_from_tensor(model, x), hub_forward(hub_state(), x).double().numpy(),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match="not found"):
        dinov2.load_dinov2(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read"):
        dinov2.load_dinov2(tmp_path / "junk.pth")
    bad = hub_state()
    bad["register_tokens"] = torch.zeros(1, 4, DIM)
    with pytest.raises(UsageError, match="register"):
        dinov2.load_dinov2(bad)


def test_tiny_model_directory_features(tmp_path) -> None:
    path = dinov2.build_tiny_dinov2(tmp_path / "tiny")
    model = dinov2.load_dinov2(path, device="cpu")
    assert getattr(model, "gpic_hub_semantics", False)
    from PIL import Image

    imgs = [Image.new("RGB", (256, 256), (i * 40, 100, 200 - i * 30)) for i in range(5)]
    one = dinov2.features(model, imgs, batch_size=2)
    assert one.shape == (5, 32) and one.dtype == np.float64 and np.isfinite(one).all()
    np.testing.assert_allclose(one, dinov2.features(model, imgs, batch_size=5), rtol=1e-5, atol=1e-6)
    assert np.abs(one[0] - one[4]).max() > 1e-3  # different images, different features
    # features use exactly the protocol preprocessing
    x = dinov2.preprocess(imgs[:1])
    # batch 1 vs batch 2: float32 kernels block differently (as the batch-size check above)
    np.testing.assert_allclose(dinov2.features_from_tensor(model, x), one[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_cuda_features_match_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    state = hub_state()
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    cpu = dinov2.features_from_tensor(dinov2.load_dinov2(state, device="cpu", num_heads=HEADS), x)
    gpu = dinov2.features_from_tensor(dinov2.load_dinov2(state, device="cuda", num_heads=HEADS), x.cuda())
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_hub_id_missing_from_the_cache_offline_is_a_usage_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="not in the HF cache .*empty-cache"):
        dinov2.load_dinov2("facebook/dinov2-large")
    with pytest.raises(UsageError, match="register variant"):
        dinov2.load_dinov2("facebook/dinov2-with-registers-large")
