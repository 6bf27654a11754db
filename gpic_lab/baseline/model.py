"""The JiT-T2I denoiser: a plain Transformer over 16x16 pixel patches that predicts the clean image (x-prediction).

Architecture (as PixelGen's JiT-T2I, which GPIC trains; our own implementation):
- bottleneck patch embedding: each 16x16x3 patch (768 values) -> Linear(768, bottleneck, no bias) ->
  Linear(bottleneck, hidden); plus a fixed 2-D sin-cos position table;
- time: sinusoidal features of t in [0, 1] (max period 10) -> MLP; every block is modulated (adaLN: shift, scale,
  gate for attention and MLP) by SiLU(time embedding) only;
- text: the frozen encoder's last hidden states [B, 300, text_dim] -> Linear -> RMSNorm -> + learned positions,
  refined by `text_depth` text blocks (self-attention over the text tokens);
- image blocks: queries are the image tokens; keys/values are the image tokens (2-D RoPE) followed by the refined
  text tokens (each block has its own text K/V projection; no RoPE on text). Padded text positions are attended
  to like the others (no mask), as in the reference code (OUR ASSUMPTION that GPIC's copy of it kept this);
- attention with RMS-normalised queries/keys, SwiGLU MLP, pre-RMSNorm, adaLN-zero initialisation;
- output: LayerNorm (no affine) -> Linear to 768 values per patch -> the image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from gpic_lab.baseline.config import ModelConfig


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32, returned in the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class SwiGLU(nn.Module):
    """SiLU-gated MLP without biases: w3(silu(a) * b) with [a, b] = w12(x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w3 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def rope_angles(head_dim: int, side: int, theta: float = 10000.0) -> torch.Tensor:
    """2-D rotary angles [side*side, head_dim // 2]: rotation pair j turns by the column (j even) or row (j odd)
    coordinate times frequency j // 2. Coordinates are linspace(0, side, side), as the reference code.
    OUR ASSUMPTION: that stretch (16/15 per patch at side 16) is kept as written there."""
    cpu = torch.device("cpu")  # explicit: a torch.device("meta") context must not reach half of these factories
    freqs = 1.0 / theta ** (torch.arange(0, head_dim, 4, device=cpu)[: head_dim // 4].float() / head_dim)
    coords = torch.linspace(0, side, side, device=cpu)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    col_angles = cols.reshape(-1, 1) * freqs  # [N, head_dim/4]
    row_angles = rows.reshape(-1, 1) * freqs
    return torch.stack([col_angles, row_angles], dim=-1).reshape(side * side, -1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2j], x[2j+1]) of x [B, heads, N, head_dim] by the angles behind cos/sin [N, hd/2]."""
    pairs = x.unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def sincos_table(dim: int, side: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table [side*side, dim]: first half encodes the column, second half the row."""
    cpu = torch.device("cpu")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64, device=cpu) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float64, device=cpu),
                                torch.arange(side, dtype=torch.float64, device=cpu), indexing="ij")
    parts = []
    for coord in (cols.reshape(-1), rows.reshape(-1)):
        angles = coord[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


class TimeEmbed(nn.Module):
    """t in [0, 1] -> sinusoidal features (256, max period 10) -> Linear-SiLU-Linear."""

    def __init__(self, hidden: int, freq_dim: int = 256, max_period: float = 10.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.freq_dim, self.max_period = freq_dim, max_period

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        feats = torch.cat([args.cos(), args.sin()], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, H*D] -> [B, H, N, D]."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


class Block(nn.Module):
    """A pre-norm adaLN Transformer block. Image blocks (`text_kv=True`) also attend to the text tokens."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float, text_kv: bool) -> None:
        super().__init__()
        self.heads = heads
        head_dim = hidden // heads
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.text_kv = nn.Linear(hidden, 2 * hidden, bias=False) if text_kv else None
        self.q_norm, self.k_norm = RMSNorm(head_dim), RMSNorm(head_dim)
        self.proj = nn.Linear(hidden, hidden)
        self.mlp = SwiGLU(hidden, int(hidden * mlp_ratio))
        self.ada = nn.Linear(hidden, 6 * hidden)

    def attention(self, x: torch.Tensor, text: torch.Tensor | None, rope: tuple[torch.Tensor, torch.Tensor] | None
                  ) -> torch.Tensor:
        q, k, v = (_heads(p, self.heads) for p in self.qkv(x).chunk(3, dim=-1))
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:  # in the dtype of q/k (bf16 under autocast: SDPA keeps its fused kernels)
            cos, sin = rope[0].to(q.dtype), rope[1].to(q.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.text_kv is not None and text is not None:
            tk, tv = (_heads(p, self.heads) for p in self.text_kv(text).chunk(2, dim=-1))
            k, v = torch.cat([k, self.k_norm(tk)], dim=2), torch.cat([v, tv], dim=2)
        out = F.scaled_dot_product_attention(q, k, v.to(q.dtype))
        return self.proj(out.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).unsqueeze(1).chunk(6, dim=-1)
        x = x + gate1 * self.attention(self.norm1(x) * (1 + scale1) + shift1, text, rope)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class JiTT2I(nn.Module):
    """The denoiser: (noisy image x_t in [-1, 1], t in [0, 1], text states [B, L, text_dim]) -> predicted clean image.

    Args:
        cfg: the model shape (`config.get_config(name)`).
        grad_checkpoint: recompute block activations in the backward pass (less memory, ~30% more compute).
    """

    def __init__(self, cfg: ModelConfig, grad_checkpoint: bool = False) -> None:
        super().__init__()
        self.cfg, self.grad_checkpoint = cfg, grad_checkpoint
        h, pix, side = cfg.hidden, cfg.patch * cfg.patch * 3, cfg.image_size // cfg.patch
        self.patch_down = nn.Linear(pix, cfg.bottleneck, bias=False)
        self.patch_up = nn.Linear(cfg.bottleneck, h)
        self.time = TimeEmbed(h)
        self.text_in = nn.Linear(cfg.text_dim, h)
        self.text_norm = RMSNorm(h)
        self.text_pos = nn.Parameter(torch.zeros(1, cfg.text_len, h))
        self.pos = nn.Parameter(torch.zeros(1, side * side, h), requires_grad=False)  # fixed (counted, as upstream)
        self.text_blocks = nn.ModuleList(Block(h, cfg.heads, cfg.mlp_ratio, False) for _ in range(cfg.text_depth))
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.mlp_ratio, True) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.final = nn.Linear(h, pix)
        self.register_buffer("rope", rope_angles(h // cfg.heads, side).to(self.pos.device), persistent=False)
        if self.pos.device.type != "meta":
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-uniform linears with zero biases; N(0, 0.02) time MLP and text positions; sin-cos image
        positions; adaLN and the output layer zero (every block starts as the identity, the output as 0)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for lin in (self.time.mlp[0], self.time.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.normal_(self.text_pos, std=0.02)
        self.pos.copy_(sincos_table(self.cfg.hidden, self.cfg.image_size // self.cfg.patch)[None])
        for block in [*self.text_blocks, *self.blocks]:
            nn.init.zeros_(block.ada.weight)
            nn.init.zeros_(block.ada.bias)
        nn.init.zeros_(self.final.weight)
        nn.init.zeros_(self.final.bias)
        self.rope = rope_angles(self.cfg.hidden // self.cfg.heads, self.cfg.image_size // self.cfg.patch).to(
            self.rope.device)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, 3*p*p] (channel, row, column order within a patch, as F.unfold)."""
        b, c, hh, ww = x.shape
        p = self.cfg.patch
        return x.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, side = self.cfg.patch, self.cfg.image_size // self.cfg.patch
        b = x.shape[0]
        return x.reshape(b, side, side, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, side * p, side * p)

    def _run(self, block: Block, *args: Any) -> torch.Tensor:
        if self.grad_checkpoint and self.training:
            from torch.utils.checkpoint import checkpoint

            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def encode_text(self, text: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Project, normalise and refine the text states under the time conditioning c."""
        if text.shape[1:] != (self.cfg.text_len, self.cfg.text_dim):
            raise ValueError(f"text states {tuple(text.shape[1:])} != ({self.cfg.text_len}, {self.cfg.text_dim})")
        y = self.text_norm(self.text_in(text.to(self.text_in.weight.dtype))) + self.text_pos
        for block in self.text_blocks:
            y = self._run(block, y, c)
        return y

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        c = F.silu(self.time(t))
        y = self.encode_text(text, c)
        h = self.patch_up(self.patch_down(self.patchify(x))) + self.pos
        rope = (self.rope.cos(), self.rope.sin())
        for block in self.blocks:
            h = self._run(block, h, c, y, rope)
        return self.unpatchify(self.final(self.final_norm(h)))


def build_model(cfg: ModelConfig, device: str | torch.device | None = None, seed: int | None = 0,
                grad_checkpoint: bool = False) -> JiTT2I:
    """A freshly initialised denoiser (seeded), in float32 on `device` ("meta" builds shapes only)."""
    if str(device) == "meta":
        with torch.device("meta"):
            return JiTT2I(cfg, grad_checkpoint)
    if seed is not None:
        torch.manual_seed(seed)
    return JiTT2I(cfg, grad_checkpoint).to(device or "cpu")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
