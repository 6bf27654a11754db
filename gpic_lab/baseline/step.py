"""One optimisation step of the baseline: encode captions, flow-matching loss, backward (DDP), clip, AdamW, EMA.

The loss of a step is the sum of per-sample losses divided by the nominal global batch (e.g. 256), and each rank
scales its part by the world size (DDP averages gradients over ranks). For full batches this is the mean over the
global batch; the partial batches at an epoch's end weigh each sample the same as every other step does. A rank
whose data ran out while others still have some joins the step with a zero-weight dummy sample, so every sample of
the epoch is trained on exactly once and the ranks stay in lockstep. OUR ASSUMPTIONS (GPIC does not describe its
epoch tail; its footnote says a few samples were repeated).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from gpic_lab.baseline import flow


@dataclass
class StepContext:
    """Everything a step needs besides the batch."""

    model: Any  # the module to call (DDP wrapper when distributed)
    raw: Any  # the unwrapped model (EMA, clipping, state dict)
    encoder: Any
    optimizer: Any
    ema: Any | None
    cfg: Any  # ModelConfig
    device: torch.device
    world: int
    global_batch: int
    micro_batch: int
    seed: int
    dropout: float = flow.COND_DROPOUT
    grad_clip: float | None = 1.0
    bf16: bool = False

    def autocast(self) -> Any:
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


def lr_at(step: int, base: float, warmup_steps: int) -> float:
    """Constant learning rate after a linear warmup from base/warmup_steps over `warmup_steps` steps (GPIC: constant
    after 0.1% warmup; the linear shape is OUR ASSUMPTION)."""
    return base * min(1.0, (step + 1) / max(1, warmup_steps))


def _dummy(ctx: StepContext) -> dict[str, Any]:
    size = ctx.cfg.image_size
    return {"image": torch.zeros(1, 3, size, size, dtype=torch.uint8), "key": ["__pad__"], "caption": [""]}


def _chunk_loss(ctx: StepContext, images: torch.Tensor, keys: list[str], captions: list[str], epoch: int,
                scale: float) -> torch.Tensor:
    """Backward of one micro-batch; returns the detached sum of its per-sample losses."""
    x = images.to(ctx.device, non_blocking=True)
    x = flow.from_uint8(x) if x.dtype == torch.uint8 else x.float() * 2.0 - 1.0  # uint8, or float in [0, 1]
    draws = flow.training_draws(keys, ctx.seed, epoch, x.shape[1:], ctx.device, ctx.cfg.p_mean, ctx.cfg.p_std,
                                ctx.dropout)
    text = ctx.encoder(["" if drop else cap for drop, cap in zip(draws.drop, captions, strict=True)])
    losses = flow.velocity_loss(ctx.model, x, text, draws, ctx.cfg.t_eps, ctx.autocast())
    (losses.sum() * scale).backward()
    return losses.detach().sum()


def train_step(ctx: StepContext, batch: dict[str, Any] | None, epoch: int, lr: float) -> tuple[torch.Tensor, float]:
    """One optimizer step on this rank's batch (None: a zero-weight dummy). The batch holds "image" (uint8 [B,3,H,W],
    or float in [0, 1]), "key" and "caption". Returns (sum of this rank's per-sample losses as a device tensor,
    global gradient norm before clipping)."""
    real = batch is not None
    batch = batch if real else _dummy(ctx)
    scale = ctx.world / ctx.global_batch if real else 0.0
    images, keys, captions = batch["image"], list(batch["key"]), list(batch["caption"])
    ctx.optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=ctx.device)
    starts = list(range(0, len(keys), ctx.micro_batch))
    for i, start in enumerate(starts):
        sync = nullcontext() if i == len(starts) - 1 or not hasattr(ctx.model, "no_sync") else ctx.model.no_sync()
        end = start + ctx.micro_batch
        with sync:
            total += _chunk_loss(ctx, images[start:end], keys[start:end], captions[start:end], epoch, scale)
    for group in ctx.optimizer.param_groups:
        group["lr"] = lr
    params = [p for p in ctx.raw.parameters() if p.requires_grad]
    max_norm = ctx.grad_clip if ctx.grad_clip else math.inf
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    ctx.optimizer.step()
    if ctx.ema is not None:
        ctx.ema.update(ctx.raw)
    return (total if real else torch.zeros((), device=ctx.device)), norm


def make_optimizer(model: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                   weight_decay: float = 0.0) -> Any:
    """AdamW over the trainable parameters (GPIC: lr 1e-4, betas (0.9, 0.95), no weight decay); fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = params[0].is_cuda if params else False
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused)
