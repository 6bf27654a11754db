"""Named JiT-T2I configurations and their compute cost (parameters, FLOPs per training image).

`gpic-1.1b` is GPIC's baseline (PixelGen's "PixGen-XXL/16" JiT-T2I: patch 16, hidden 1536, 16 image blocks +
4 text blocks, 24 heads, bottleneck 256, frozen Qwen3-1.7B with 300 text tokens). `base` fits one GPU, `tiny`
trains on a CPU in seconds (with a tiny random Qwen3, see `text_encoder.build_tiny_qwen3`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from gpic_lab.errors import UsageError

QWEN3_1P7B = "Qwen/Qwen3-1.7B"
TEXT_TOKENS = 300  # GPIC: maximum text length 300 tokens
IMAGE_SIZE = 256  # GPIC trains and evaluates at 256x256
GPIC_EPOCH_IMAGES = 100_000_000  # GPIC-Full train split (one epoch)
GPIC_HOURS = 40.0  # GPIC §4: about 40 hours on one 8xH100 node
GPIC_GPUS = 8


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a JiT-T2I denoiser and the text encoder it reads.

    Args:
        name: registry name.
        hidden: transformer width; heads: attention heads (head dim = hidden // heads).
        depth: image blocks (self-attention over image tokens, keys/values also from the text tokens).
        text_depth: text blocks (self-attention over the text tokens, before the image blocks).
        bottleneck: width of the bottleneck patch embedding (patch pixels -> bottleneck -> hidden).
        patch: patch side in pixels; image_size: training/sampling resolution.
        mlp_ratio: SwiGLU hidden width as a multiple of `hidden`.
        text_dim: hidden size of the text encoder (Qwen3-1.7B: 2048); text_len: tokens per caption (padded).
        text_encoder: hub id, local directory or "tiny" (random placeholder).
        t_eps: lower clamp of 1 - t when x-predictions are turned into velocities (JiT/PixelGen: 0.05).
        p_mean, p_std: logit-normal time sampling, t = sigmoid(N(p_mean, p_std)) (JiT/PixelGen: -0.8, 0.8).
    """

    name: str
    hidden: int
    depth: int
    text_depth: int
    heads: int
    bottleneck: int
    text_dim: int
    text_encoder: str
    patch: int = 16
    image_size: int = IMAGE_SIZE
    mlp_ratio: float = 4.0
    text_len: int = TEXT_TOKENS
    t_eps: float = 0.05
    p_mean: float = -0.8
    p_std: float = 0.8

    @property
    def tokens(self) -> int:
        """Image tokens per sample."""
        return (self.image_size // self.patch) ** 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIGS: dict[str, ModelConfig] = {
    # tiny: CPU demo and tests only; 64 text tokens (GPIC's 300 would triple its attention cost on a CPU)
    "tiny": ModelConfig("tiny", hidden=64, depth=2, text_depth=1, heads=4, bottleneck=32, text_dim=64,
                        text_encoder="tiny", text_len=64),
    "base": ModelConfig("base", hidden=768, depth=12, text_depth=2, heads=12, bottleneck=128, text_dim=2048,
                        text_encoder=QWEN3_1P7B),
    "gpic-1.1b": ModelConfig("gpic-1.1b", hidden=1536, depth=16, text_depth=4, heads=24, bottleneck=256,
                             text_dim=2048, text_encoder=QWEN3_1P7B),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """A registered config by name (UsageError listing the names otherwise), with optional field overrides."""
    if name not in CONFIGS:
        raise UsageError(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None})


def from_dict(d: dict[str, Any]) -> ModelConfig:
    """The config stored in a checkpoint."""
    return ModelConfig(**d)


def block_params(cfg: ModelConfig, image: bool) -> int:
    """Parameters of one image block (image=True) or text block, as built by `model.JiTT2I`."""
    h, ffn = cfg.hidden, int(cfg.hidden * cfg.mlp_ratio)
    attn = 3 * h * h + (2 * h * h if image else 0) + h * h + h + 2 * (h // cfg.heads)  # qkv, text kv, proj, qk-norms
    return 2 * h + attn + 3 * h * ffn + 6 * h * h + 6 * h  # norms, attention, SwiGLU, adaLN


def param_count(cfg: ModelConfig) -> int:
    """Denoiser parameters (including the frozen sin-cos position table), computed from the shapes."""
    h, pix = cfg.hidden, cfg.patch * cfg.patch * 3
    embed = pix * cfg.bottleneck + cfg.bottleneck * h + h  # bottleneck patch embedding
    time = 256 * h + h + h * h + h
    text = cfg.text_dim * h + h + h + cfg.text_len * h  # projection + RMSNorm + learned positions
    final = h * pix + pix
    return (embed + time + text + cfg.tokens * h + final + cfg.depth * block_params(cfg, True)
            + cfg.text_depth * block_params(cfg, False))


def matmul_flops_per_image(cfg: ModelConfig) -> float:
    """Forward FLOPs of the denoiser for one image (2 per multiply-add; linear layers and attention)."""
    h, n, m, ffn = cfg.hidden, cfg.tokens, cfg.text_len, int(cfg.hidden * cfg.mlp_ratio)
    dense = 4 * h * h + 3 * h * ffn  # qkv + proj, SwiGLU (weights touched per token)
    image = cfg.depth * (n * dense + m * 2 * h * h + 2 * 2 * n * (n + m) * h)  # + text K/V, scores + values
    text = cfg.text_depth * (m * dense + 2 * 2 * m * m * h)
    io = n * (cfg.patch**2 * 3 * cfg.bottleneck + cfg.bottleneck * h + h * cfg.patch**2 * 3) + m * cfg.text_dim * h
    return 2.0 * (image + text + io)


def train_flops_per_image(cfg: ModelConfig, text_encoder_params: float | None = None) -> float:
    """Training FLOPs per image: 3x the denoiser forward, plus one forward of the frozen text encoder
    (2 * params * tokens; Qwen3-1.7B has 1.72e9 parameters of which 0.31e9 are the embedding table)."""
    enc = text_encoder_params if text_encoder_params is not None else (1.41e9 if cfg.text_dim == 2048 else 0.0)
    return 3.0 * matmul_flops_per_image(cfg) + 2.0 * enc * cfg.text_len


def epoch_hours(images_per_s_per_gpu: float, gpus: int = GPIC_GPUS, images: int = GPIC_EPOCH_IMAGES) -> float:
    """Hours for one epoch of `images` at a measured per-GPU rate on `gpus` GPUs (linear scaling assumed)."""
    return images / (images_per_s_per_gpu * gpus) / 3600.0


def gpic_images_per_s_per_gpu() -> float:
    """GPIC's implied rate: 100M images in 40 h on 8 GPUs (≈ 86.8 images/s per H100)."""
    return GPIC_EPOCH_IMAGES / (GPIC_HOURS * 3600.0 * GPIC_GPUS)
