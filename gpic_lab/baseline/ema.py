"""An exponential moving average of the denoiser's weights, kept in float32 beside the live weights.

GPIC does not state whether or how it used EMA (the paper never mentions it). The third-party record of GPIC's
shipped training config reports EMA decay 0.9999 updated every step, and PixelGen samples from the EMA weights;
our default follows that, and `--ema-decay` changes it (0 keeps a copy of the live weights). OUR ASSUMPTION.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

DEFAULT_DECAY = 0.9999


class EMA:
    """ema = decay * ema + (1 - decay) * live, for every floating-point parameter, after each optimizer step.

    Args:
        model: the live model (unwrapped, not the DDP wrapper).
        decay: the EMA decay.
    """

    def __init__(self, model: nn.Module, decay: float = DEFAULT_DECAY) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        live = dict(model.named_parameters())
        self.shadow = {n: live[n].detach().float().clone() for n in self.names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from the current live weights."""
        live = dict(model.named_parameters())
        shadow = [self.shadow[n] for n in self.names]
        current = [live[n].detach().float() for n in self.names]
        torch._foreach_lerp_(shadow, current, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.names) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for n in self.names:
            self.shadow[n].copy_(state["shadow"][n])

    def weights(self) -> dict[str, torch.Tensor]:
        """The EMA weights as a parameter-name -> tensor dict (for `model.load_state_dict(..., strict=False)`)."""
        return dict(self.shadow)
