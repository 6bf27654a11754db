"""The JiT-T2I denoiser and its flow matching: parameter count, overfitting, guidance, sampler determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gpic_lab.baseline import flow  # noqa: E402
from gpic_lab.baseline.config import get_config, param_count  # noqa: E402
from gpic_lab.baseline.model import build_model, count_parameters  # noqa: E402

CPU = torch.device("cpu")
SHAPE = (3, 256, 256)
THIRD_PARTY_COUNT = 1_122_396_928  # GPIC's JiT-T2I checkpoint, as recorded by a third party


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic and fast on a busy 2-core machine
    yield
    torch.set_num_threads(old)


def _live_model(seed: int = 0):
    """The tiny model with its zero-initialised adaLN and output layers made non-zero (a fresh model predicts 0)."""
    model = build_model(get_config("tiny"), seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in [*model.text_blocks, *model.blocks]:
            block.ada.weight.copy_(torch.randn(block.ada.weight.shape, generator=gen) * 0.2)
        model.final.weight.copy_(torch.randn(model.final.weight.shape, generator=gen) * 0.2)
    return model.eval()


def _text(n: int, seed: int = 0):
    cfg = get_config("tiny")
    return torch.randn(n, cfg.text_len, cfg.text_dim, generator=torch.Generator().manual_seed(seed))


def test_gpic_1p1b_parameter_count_on_the_meta_device() -> None:
    cfg = get_config("gpic-1.1b")
    model = build_model(cfg, "meta")
    assert next(model.parameters()).device.type == "meta"
    assert count_parameters(model) == param_count(cfg) == THIRD_PARTY_COUNT
    frozen_positions = (cfg.image_size // cfg.patch) ** 2 * cfg.hidden
    assert count_parameters(model, trainable_only=True) == THIRD_PARTY_COUNT - frozen_positions
    assert (cfg.patch, cfg.hidden, cfg.depth, cfg.text_depth, cfg.text_len) == (16, 1536, 16, 4, 300)
    for name in ("tiny", "base"):
        assert count_parameters(build_model(get_config(name), "meta")) == param_count(get_config(name))


def test_fresh_model_is_identity_blocks_and_zero_output() -> None:
    model = build_model(get_config("tiny"), seed=0)
    out = model(torch.randn(2, *SHAPE), torch.rand(2), _text(2))
    assert out.shape == (2, *SHAPE) and torch.count_nonzero(out) == 0  # adaLN-zero and a zero output layer
    with pytest.raises(ValueError, match="text states"):
        model(torch.randn(1, *SHAPE), torch.rand(1), torch.randn(1, 7, 64))


def test_tiny_model_overfits_a_handful_of_images(sample_dir: Path) -> None:
    """Four real images, fixed text states, fresh noise and times every step: the velocity loss on held-out draws
    falls by at least 3x in 100 AdamW steps (measured ~5.9x)."""
    from gpic_lab.baseline.step import make_optimizer
    from gpic_lab.loader.augment import EvalTransform
    from gpic_lab.shards.reader import iter_samples, list_shards

    samples = list(iter_samples(list_shards([sample_dir / "train"])))[:4]
    images = torch.from_numpy(np.stack([EvalTransform()(s.image) for s in samples])).permute(0, 3, 1, 2)
    x, text, keys = flow.from_uint8(images), _text(4), [s.key for s in samples]
    model = build_model(get_config("tiny"), seed=0)
    opt = make_optimizer(model, lr=1e-3)

    def held_out() -> float:
        with torch.no_grad():
            return float(np.mean([flow.velocity_loss(model, x, text, flow.training_draws(
                keys, 99, e, SHAPE, CPU, dropout=0.0)).mean().item() for e in range(3)]))

    before = held_out()
    for step in range(100):
        opt.zero_grad()
        flow.velocity_loss(model, x, text, flow.training_draws(keys, 0, step, SHAPE, CPU, dropout=0.0)).mean().backward()
        opt.step()
    after = held_out()
    assert before / after >= 3.0, (before, after)


def test_training_draws_are_keyed_not_positional() -> None:
    a = flow.training_draws(["k1", "k2", "k3"], seed=0, epoch=0, shape=SHAPE, device=CPU)
    b = flow.training_draws(["k3", "k1"], seed=0, epoch=0, shape=SHAPE, device=CPU)
    assert torch.equal(a.noise[2], b.noise[0]) and torch.equal(a.noise[0], b.noise[1])
    assert a.t[0] == b.t[1] and a.drop[2] == b.drop[0]
    c = flow.training_draws(["k1"], seed=0, epoch=1, shape=SHAPE, device=CPU)
    assert not torch.equal(a.noise[0], c.noise[0])
    many = flow.training_draws([f"k{i}" for i in range(400)], 0, 0, (1, 1, 1), CPU)
    assert 0.05 < sum(many.drop) / 400 < 0.16  # 10% caption dropout
    logit = torch.log(many.t / (1 - many.t))
    assert abs(logit.mean().item() + 0.8) < 0.15 and abs(logit.std().item() - 0.8) < 0.12  # logit-normal(-0.8, 0.8)


def test_guidance_one_equals_the_conditional_prediction() -> None:
    model = _live_model()
    x, cond, uncond = torch.randn(2, *SHAPE), _text(2, 1), _text(2, 2)
    with torch.no_grad():
        v_cond = flow.velocity(model, x, 0.3, cond)
        assert torch.equal(flow.guided_velocity(model, x, 0.3, cond, uncond, 1.0), v_cond)
        v_unc = flow.velocity(model, x, 0.3, uncond)
        guided = flow.guided_velocity(model, x, 0.3, cond, uncond, 4.0)
        torch.testing.assert_close(guided, v_unc + 4.0 * (v_cond - v_unc), rtol=1e-4, atol=1e-4)
        assert (v_cond - v_unc).abs().max() > 1e-3 and (guided - v_cond).abs().max() > 3e-3
        # the reference sampler does not guide at t = 0 (its first step)
        assert torch.equal(flow.guided_velocity(model, x, 0.0, cond, uncond, 4.0), flow.velocity(model, x, 0.0, cond))
    noise = flow.keyed_normal(1, (2, *SHAPE), CPU)
    nan_uncond = torch.full_like(uncond, float("nan"))  # guidance 1 never runs the unconditional pass
    assert torch.equal(flow.euler_sample(model, noise, cond, nan_uncond, 1.0, steps=4),
                       flow.euler_sample(model, noise, cond, uncond, 1.0, steps=4))


def test_sampler_is_deterministic_for_a_seed() -> None:
    model = _live_model()
    cond, uncond = _text(3, 1), _text(1, 2)

    def draw(seed: int, keys: list[str]) -> torch.Tensor:
        noise = torch.stack([flow.keyed_normal(flow.key_seed(seed, "sample", k), SHAPE, CPU) for k in keys])
        return flow.to_uint8(flow.euler_sample(model, noise, cond[: len(keys)], uncond, 4.0, steps=5))

    first, again = draw(0, ["a", "b", "c"]), draw(0, ["a", "b", "c"])
    assert torch.equal(first, again) and first.dtype == torch.uint8 and first.shape == (3, *SHAPE)
    assert not torch.equal(first, draw(1, ["a", "b", "c"]))
    alone = draw(0, ["a"])  # the same prompt in a batch of one: same noise, same image (up to rounding)
    assert (alone[0].int() - first[0].int()).abs().max() <= 1
    grid = flow.time_grid(50)
    assert len(grid) == 51 and grid[0] == 0.0 and grid[-1] == 1.0


def test_euler_sampler_with_the_exact_denoiser_lands_on_the_data() -> None:
    """For a two-image data set the optimal x-prediction is known in closed form (a posterior-weighted mean of the
    two images); 50 Euler steps from noise must end on one of them, and both must be reached."""
    points = torch.stack([torch.full((3, 8, 8), -0.5), torch.linspace(-1, 1, 192).reshape(3, 8, 8)])

    def exact(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        tt, sigma = t.view(-1, 1, 1, 1, 1), (1 - t.view(-1, 1)).clamp_min(1e-4)
        logw = -((x[:, None] - tt * points[None]) ** 2).flatten(2).sum(-1) / (2 * sigma**2)
        return (logw.softmax(1)[:, :, None, None, None] * points[None]).sum(1)

    noise = flow.keyed_normal(3, (16, 3, 8, 8), CPU)
    text = torch.zeros(16, 1, 1)
    out = flow.euler_sample(exact, noise, text, text[:1], 1.0, steps=50)
    dist = ((out[:, None] - points[None]) ** 2).flatten(2).mean(-1)
    assert dist.min(1).values.max() < 2e-3 and set(dist.argmin(1).tolist()) == {0, 1}
