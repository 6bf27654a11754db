"""DINOv2 feature extractor for FD-DINOv2, matching the torch.hub model behind published GPIC numbers.

GPIC (via dgm-eval) uses `torch.hub.load("facebookresearch/dinov2", "dinov2_vitl14")`: ViT-L/14 without
registers, image size 518 (37x37 position grid), layer-norm eps 1e-6, layer scale, and as feature the CLS token
after the final layer norm (1024-d). We run the transformers `Dinov2Model` and patch the one place where it
differs from the hub code: position-embedding interpolation. The hub model interpolates the 37x37 grid to the
16x16 grid of a 224 input with `scale_factor=(16 + 0.1) / 37` (legacy offset 0.1), bicubic, antialias False;
transformers passes `size=(16, 16)`, which samples the grid at slightly different points.

Weights come from a local transformers directory, a Hugging Face hub id resolved through the user's HF cache
(`facebook/dinov2-large`; downloaded when online, see `gpic_lab.models.hub`) or a torch.hub `.pth` state dict
(`dinov2_vitl14_pretrain.pth` naming), mapped by `hub_to_transformers`.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError

HUB_INTERPOLATE_OFFSET = 0.1  # dinov2 hub: legacy offset for non-register models
HUB_INTERPOLATE_ANTIALIAS = False  # dinov2 hub: antialias only for the _reg variants
VITL14 = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4,
          "image_size": 518, "patch_size": 14, "layer_norm_eps": 1e-6, "layerscale_value": 1.0}


def hub_interpolate_pos_encoding(self: Any, embeddings: Any, height: int, width: int) -> Any:
    """Hub-exact position-embedding interpolation (bound onto `Dinov2Embeddings`)."""
    import torch
    from torch import nn

    pos = self.position_embeddings
    npatch = embeddings.shape[1] - 1
    n = pos.shape[1] - 1
    if npatch == n and height == width:
        return pos
    previous_dtype = embeddings.dtype
    pos = pos.float()
    class_pos, patch_pos = pos[:, :1], pos[:, 1:]
    dim = embeddings.shape[-1]
    patch = self.patch_embeddings.patch_size
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    h0, w0 = height // patch, width // patch
    m = int(math.sqrt(n))
    if m * m != n:
        raise GpicError(f"dinov2: position grid of {n} entries is not square")
    grid = patch_pos.reshape(1, m, m, dim).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(
        grid, mode="bicubic", antialias=HUB_INTERPOLATE_ANTIALIAS,
        scale_factor=((h0 + HUB_INTERPOLATE_OFFSET) / m, (w0 + HUB_INTERPOLATE_OFFSET) / m))
    if tuple(grid.shape[-2:]) != (h0, w0):
        raise GpicError(f"dinov2: interpolated grid {tuple(grid.shape[-2:])} != {(h0, w0)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((class_pos, grid), dim=1).to(previous_dtype)


def apply_hub_semantics(model: Any) -> Any:
    """Patch a transformers Dinov2Model in place so its forward equals the hub model's; returns it."""
    emb = model.embeddings
    emb.interpolate_pos_encoding = types.MethodType(hub_interpolate_pos_encoding, emb)
    model.gpic_hub_semantics = True
    return model


def _config(**overrides: Any) -> Any:
    from transformers import Dinov2Config

    values = dict(VITL14)
    values.update(overrides)
    return Dinov2Config(**values)


def build_tiny_dinov2(out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save a tiny random Dinov2Model (hub geometry: 518 px, patch 14, 37x37 grid) with save_pretrained.

    A placeholder for tests and notebooks where the real ViT-L/14 weights are not available.
    """
    import torch
    from transformers import Dinov2Model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    torch.manual_seed(seed)
    model = Dinov2Model(_config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4))
    with torch.no_grad():  # non-trivial layer scale; patch projection at 1/sqrt(fan_in) so features vary by image
        for layer in model.encoder.layer:
            layer.layer_scale1.lambda1.uniform_(0.2, 1.5)
            layer.layer_scale2.lambda1.uniform_(0.2, 1.5)
        proj = model.embeddings.patch_embeddings.projection.weight
        proj.normal_(0.0, 1.0 / math.sqrt(proj[0].numel()))
    out.parent.mkdir(parents=True, exist_ok=True)
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # parallel workers build side by side
    model.save_pretrained(tmp)
    try:
        os.rename(tmp, out)
    except OSError:  # another worker finished first: its model is the same (same seed)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _attn_names(keys: set[str]) -> tuple[str, str, str, str]:
    if "encoder.layer.0.attention.q_proj.weight" in keys:
        return "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"
    return ("attention.attention.query", "attention.attention.key", "attention.attention.value",
            "attention.output.dense")


_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def hub_to_transformers(state: dict[str, Any], target_keys: set[str] | None = None) -> dict[str, Any]:
    """Rename a dinov2 hub state dict (cls_token, pos_embed, blocks.N.attn.qkv, ls1.gamma, norm.*) to transformers."""
    keys = target_keys or {"encoder.layer.0.attention.q_proj.weight"}
    q, k, v, o = _attn_names(keys)
    top = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
           "mask_token": "embeddings.mask_token", "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
           "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
           "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    inner = {"norm1": "norm1", "norm2": "norm2", "attn.proj": o, "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    out: dict[str, Any] = {}
    for name, value in state.items():
        name = name.removeprefix("module.").removeprefix("backbone.")
        if name in top:
            if name == "mask_token":
                value = value.reshape(1, -1)
            out[top[name]] = value
            continue
        match = _BLOCK.match(name)
        if not match:
            raise UsageError(f"dinov2: unexpected hub state-dict key {name!r} (register/chunked models unsupported)")
        idx, rest = match.group(1), match.group(2)
        prefix = f"encoder.layer.{idx}."
        if rest in ("ls1.gamma", "ls2.gamma"):
            out[prefix + f"layer_scale{rest[2]}.lambda1"] = value
        elif rest.startswith("attn.qkv."):
            part = rest.rsplit(".", 1)[1]
            for chunk, dest in zip(value.chunk(3, dim=0), (q, k, v), strict=True):
                out[prefix + f"{dest}.{part}"] = chunk.clone()
        else:
            mod, part = rest.rsplit(".", 1)
            if mod not in inner:
                raise UsageError(f"dinov2: unexpected hub state-dict key {name!r}")
            out[prefix + f"{inner[mod]}.{part}"] = value
    return out


def _config_from_hub(state: dict[str, Any], num_heads: int | None) -> Any:
    dim = int(state["cls_token"].shape[-1])
    layers = 1 + max(int(m.group(1)) for m in map(_BLOCK.match, state) if m)
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = int(round(math.sqrt(state["pos_embed"].shape[1] - 1)))
    ratio = int(state["blocks.0.mlp.fc1.weight"].shape[0]) // dim
    heads = num_heads or max(1, dim // 64)
    return _config(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, mlp_ratio=ratio,
                   image_size=grid * patch, patch_size=patch)


def load_dinov2(path_or_state_dict: str | os.PathLike[str] | dict[str, Any], device: str | None = None,
                num_heads: int | None = None, dtype: Any = None) -> Any:
    """A hub-equivalent Dinov2Model in eval mode.

    Args:
        path_or_state_dict: a transformers directory (config.json + weights), a hub `.pth` file, a hub
            state dict (already loaded), or a hub id through the HF cache (facebook/dinov2-large).
        device: torch device; default CUDA when available, else CPU.
        num_heads: attention heads for a hub state dict (default: width // 64, as in every DINOv2 ViT).
        dtype: torch dtype for the weights (default float32).
    """
    import torch
    from transformers import Dinov2Model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if isinstance(path_or_state_dict, dict):
        model = _from_hub_state(path_or_state_dict, num_heads)
    else:
        path = Path(path_or_state_dict)
        if path.is_dir():
            if not (path / "config.json").exists():
                raise UsageError(f"dinov2: {path} has no config.json (expected a transformers Dinov2 directory)")
            model = Dinov2Model.from_pretrained(path)
        elif path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is a usage error here
                raise UsageError(f"dinov2: cannot read state dict {path}: {exc}") from exc
            model = _from_hub_state(state, num_heads)
        elif _hub_id(str(path_or_state_dict)):
            model = Dinov2Model.from_pretrained(resolve_model(str(path_or_state_dict)))
        else:
            raise UsageError(f"dinov2: weights {path} not found (a transformers directory or hub .pth)")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev, dtype=dtype or torch.float32).eval()
    return apply_hub_semantics(model)


def _hub_id(spec: str) -> bool:
    from gpic_lab.models.hub import is_hub_id

    return is_hub_id(spec)


def _from_hub_state(state: dict[str, Any], num_heads: int | None) -> Any:
    from transformers import Dinov2Model

    state = {k.removeprefix("module."): v for k, v in state.items()}
    if "cls_token" not in state or "pos_embed" not in state:
        raise UsageError("dinov2: state dict lacks cls_token/pos_embed (not a dinov2 hub checkpoint)")
    if "register_tokens" in state:
        raise UsageError("dinov2: register variants are not the GPIC default (use dinov2_vitl14, no registers)")
    model = Dinov2Model(_config_from_hub(state, num_heads))
    mapped = hub_to_transformers(state, set(model.state_dict()))
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [m for m in missing if not m.startswith("pooler")]
    if missing or unexpected:
        raise UsageError(f"dinov2: state dict mismatch: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return model


def preprocess(images: list[Any]) -> Any:
    """Protocol preprocessing of PIL images to a float32 tensor [N, 3, 224, 224] (see gpic_lab.evaluation.preprocess)."""
    import torch

    from gpic_lab.models.dinov2_input import dino_batch

    return torch.from_numpy(dino_batch(images))


def features(model: Any, images: list[Any], batch_size: int = 64, device: str | None = None) -> np.ndarray:
    """CLS-after-final-norm features of PIL images as float64 [N, D] (protocol 224 stretch + ImageNet norm)."""
    import torch

    from gpic_lab.models.dinov2_input import dino_batch

    dev = device or str(next(model.parameters()).device)
    dtype = next(model.parameters()).dtype
    dim = int(model.config.hidden_size)
    out = np.empty((len(images), dim), dtype=np.float64)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(dino_batch(images[start:start + batch_size]))
        out[start:start + len(batch)] = features_from_tensor(model, batch.to(dev, dtype=dtype))
    return out


def features_from_tensor(model: Any, pixel_values: Any) -> np.ndarray:
    """CLS token after the final layer norm for an already preprocessed batch, as float64 numpy."""
    import torch

    with torch.inference_mode():
        hidden = model(pixel_values=pixel_values).last_hidden_state
    return hidden[:, 0].float().cpu().numpy().astype(np.float64)


TINY = "tiny"


def resolve_model(spec: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None) -> Path:
    """A weights path: a local dir/file as given, a hub id's snapshot dir in the HF cache (``gpic_lab.models.hub``),
    or for the word 'tiny' the random placeholder, built once under `cache` (default: state root)."""
    if str(spec) == TINY:
        from gpic_lab.paths import state_root

        return build_tiny_dinov2(Path(cache or state_root() / "models") / "dinov2-tiny-random")
    if _hub_id(str(spec)):
        if "reg" in str(spec).lower():
            raise UsageError(f"dinov2: {spec} is a register variant; GPIC uses ViT-L/14 without registers")
        from gpic_lab.models.hub import resolve

        return resolve(spec, "DINOv2")
    return Path(spec)


def model_tag(path: str | os.PathLike[str]) -> str:
    """Name + weights digest for file names, e.g. 'dinov2-vitl14-1a2b3c4d' or 'dinov2-tiny-random-...'."""
    import hashlib
    import json

    p = Path(path)
    files = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    arch = "vitl14"
    cfg = p / "config.json" if p.is_dir() else None
    if cfg is not None and cfg.exists():
        c = json.loads(cfg.read_text())
        if c.get("hidden_size") != 1024 or c.get("num_hidden_layers") != 24:
            arch = f"d{c.get('hidden_size')}l{c.get('num_hidden_layers')}"
    if "tiny" in p.name:
        arch = "tiny-random"
    return f"dinov2-{arch}-{h.hexdigest()[:8]}"


# name -> (weights dtype, autocast dtype or None, TF32 matmuls). fp32 is the protocol's reference; on one H100
# (`gpic-lab bench eval`, random ViT-L/14 weights, 50K images) fp16-autocast kept |FD - FD_fp32| at 0.002 and tf32
# at 0.002, while bf16 weights drifted by 0.14: see docs/eval.md.
PRECISIONS: dict[str, tuple[str, str | None, bool]] = {
    "fp32": ("float32", None, False), "tf32": ("float32", None, True),
    "fp16-autocast": ("float32", "float16", False), "bf16-autocast": ("float32", "bfloat16", False),
    "fp16": ("float16", None, False), "bf16": ("bfloat16", None, False),
}


def weights_dtype(precision: str) -> Any:
    """The torch dtype the weights are loaded in for a precision name (see PRECISIONS)."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"dinov2: dtype (precision) {precision!r} not in {list(PRECISIONS)}")
    return getattr(torch, PRECISIONS[precision][0])


@contextlib.contextmanager
def precision_context(precision: str, device: str = "cuda") -> Iterator[None]:
    """Autocast and TF32 settings of a precision name, restored on exit."""
    import torch

    weights_dtype(precision)  # validates the name
    _, autocast, tf32 = PRECISIONS[precision]
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.autocast(str(device).split(":")[0], dtype=getattr(torch, autocast or "float32"),
                            enabled=autocast is not None):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
