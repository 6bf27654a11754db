"""Flow matching with x-prediction (JiT): noising, logit-normal times, the velocity loss, and the Euler + CFG sampler.

Convention (JiT / PixelGen): t = 0 is pure noise, t = 1 the clean image, x_t = t x + (1 - t) e. The network predicts
the clean image x̂; velocities are v = (x - x_t) / max(1 - t, t_eps), so the loss is the flow-matching velocity
MSE between v(x̂) and v(x), per sample averaged over pixels, with t = sigmoid(N(-0.8, 0.8)).

Every random draw is keyed by (seed, epoch, sample key) or (seed, prompt key), not by batch position: a sample gets
the same time, noise and caption dropout however the data is batched or sharded over GPUs, which makes a resumed
run, a DDP run and a one-process run with the combined batch compute the same update, and a prompt the same image
on any GPU count. OUR ASSUMPTION (GPIC does not say how its randomness was seeded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

COND_DROPOUT = 0.1  # GPIC/PixelGen null_condition_p: the caption is replaced by "" for 10% of samples
GUIDANCE_MIN_T = 0.0  # the reference sampler guides only where t > 0.0: not on the first step (OUR ASSUMPTION)


def key_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (run seed, epoch, sample key...)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def keyed_normal(seed: int, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """N(0, 1) noise of `shape` from a generator seeded by `seed`, drawn on `device` (CPU and CUDA differ)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(tuple(shape), generator=gen, device=device)


@dataclass(frozen=True)
class Draws:
    """Per-sample randomness of one training step."""

    t: torch.Tensor  # [B] times in (0, 1)
    noise: torch.Tensor  # [B, 3, H, W]
    drop: list[bool]  # caption replaced by "" (conditioning dropout)


def training_draws(keys: Sequence[str], seed: int, epoch: int, shape: Sequence[int], device: torch.device,
                   p_mean: float = -0.8, p_std: float = 0.8, dropout: float = COND_DROPOUT) -> Draws:
    """Logit-normal times, noise and conditioning dropout for each sample, keyed by (seed, epoch, key)."""
    ts, drops, noises = [], [], []
    for key in keys:
        s = key_seed(seed, epoch, key)
        gen = torch.Generator().manual_seed(s)
        z, u = torch.randn(1, generator=gen).item(), torch.rand(1, generator=gen).item()
        ts.append(torch.sigmoid(torch.tensor(p_mean + p_std * z)).item())
        drops.append(u < dropout)
        noises.append(keyed_normal(key_seed(s, "noise"), shape, device))
    t = torch.tensor(ts, dtype=torch.float32)
    if device.type == "cuda":  # a pinned, non-blocking copy: no host-device synchronisation in the step
        t = t.pin_memory().to(device, non_blocking=True)
    return Draws(t, torch.stack(noises) if noises else torch.empty(0, *shape, device=device), drops)


def _bcast(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def noisy(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = t x + (1 - t) noise."""
    return _bcast(t) * x + (1 - _bcast(t)) * noise


def to_velocity(x_pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_eps: float = 0.05) -> torch.Tensor:
    """v = (x̂ - x_t) / max(1 - t, t_eps), in float32."""
    return (x_pred.float() - x_t.float()) / (1 - _bcast(t)).clamp_min(t_eps)


def velocity_loss(model: Any, x: torch.Tensor, text: torch.Tensor, draws: Draws, t_eps: float = 0.05,
                  autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """Per-sample flow-matching losses [B]: mean over pixels of (v(x̂) - v(x))² (x in [-1, 1])."""
    x_t = noisy(x, draws.noise, draws.t)
    with autocast or nullcontext():
        x_pred = model(x_t, draws.t, text)
    v_pred = to_velocity(x_pred, x_t, draws.t, t_eps)
    v_true = to_velocity(x, x_t, draws.t, t_eps)
    return (v_pred - v_true).pow(2).flatten(1).mean(1)


def time_grid(steps: int) -> torch.Tensor:
    """The sampler's times: uniform from 0 (noise) to 1 (image), steps + 1 points (PixelGen's EulerSamplerJiT with
    time shift 1; OUR ASSUMPTION that GPIC used this grid)."""
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def velocity(model: Any, x: torch.Tensor, t: float, text: torch.Tensor, t_eps: float = 0.05,
             autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """The model's velocity at time t for a batch (float32)."""
    tt = torch.full((x.shape[0],), float(t), device=x.device)
    with autocast or nullcontext():
        x_pred = model(x, tt, text)
    return to_velocity(x_pred, x, tt, t_eps)


def guided_velocity(model: Any, x: torch.Tensor, t: float, cond: torch.Tensor, uncond: torch.Tensor, cfg: float,
                    t_eps: float = 0.05, autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """Classifier-free guidance on velocities: v_u + cfg (v_c - v_u). With cfg == 1 (or outside the guidance
    interval) this is exactly the conditional velocity and the unconditional pass is skipped."""
    if cfg == 1.0 or t <= GUIDANCE_MIN_T:
        return velocity(model, x, t, cond, t_eps, autocast)
    both = velocity(model, torch.cat([x, x]), t, torch.cat([uncond, cond]), t_eps, autocast)
    v_u, v_c = both.chunk(2)
    return v_u + cfg * (v_c - v_u)


@torch.no_grad()
def euler_sample(model: Any, noise: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, cfg: float,
                 steps: int = 50, t_eps: float = 0.05, autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """Integrate dx/dt = v from t=0 (noise) to t=1 with `steps` Euler steps; returns images in [-1, 1] (clamped)."""
    grid = time_grid(steps).tolist()
    x = noise.float()
    uncond = uncond.expand_as(cond) if uncond.shape[0] == 1 else uncond
    for t_cur, t_next in zip(grid[:-1], grid[1:], strict=True):
        x = x + guided_velocity(model, x, t_cur, cond, uncond, cfg, t_eps, autocast) * (t_next - t_cur)
    return x.clamp(-1.0, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 [0, 255], rounded (OUR ASSUMPTION: round, not truncate)."""
    return ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div(127.5).sub(1.0)
