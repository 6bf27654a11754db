"""The frozen text encoder: Qwen3 (GPIC: Qwen3-1.7B) last hidden states of captions padded to 300 tokens.

Captions are tokenised with the model's own tokenizer, truncated and right-padded to exactly `max_length`
tokens, and run through `Qwen3Model` with the attention mask; the denoiser reads all `max_length` states
(the reference code pads to the maximum length and does not mask the padding in the denoiser). The
unconditional input for classifier-free guidance is the empty caption "" (OUR ASSUMPTION, as the reference
code: with transformers' SDPA attention its states are all zeros, since every position is padding).

Weights are loaded from a local directory or by hub id from the Hugging Face cache (never downloaded here).
`build_tiny_qwen3` writes a tiny random Qwen3 (the real `Qwen3Config`/`Qwen3Model` classes, a byte-level
tokenizer built in code) for tests and the CPU demo.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, UsageError

TINY = "tiny"
TINY_MARKER = "gpic_lab_tiny_random.json"
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
# Qwen3-1.7B's published architecture (config.json of the hub repo), for cost measurements without weights.
QWEN3_1P7B_SHAPE = dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                        num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                        rms_norm_eps=1e-6, rope_theta=1_000_000.0, tie_word_embeddings=True)


def build_tiny_qwen3(out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write (once) a tiny randomly initialised Qwen3 text model + byte tokenizer to `out_dir`; returns it."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    from gpic_lab.models.qwen_vl import _byte_tokenizer

    out = Path(out_dir)
    if (out / TINY_MARKER).is_file():
        return out
    tokenizer = _byte_tokenizer()
    tokenizer.padding_side = "right"
    config = Qwen3Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **TINY_SHAPE)
    torch.manual_seed(seed)
    model = Qwen3Model(config)
    tmp = out.with_name(f".{out.name}.tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / TINY_MARKER).write_text(json.dumps({"seed": seed, "warning": "tiny random Qwen3: placeholder"}) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # another process finished first
        return out
    os.replace(tmp, out)
    return out


def resolve(spec: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None) -> Path:
    """A model directory: 'tiny' (built once under `cache`, default the state root), a local directory, or a hub id
    (e.g. Qwen/Qwen3-1.7B) found in the Hugging Face cache ($HF_HOME, else ~/.cache/huggingface), offline."""
    if str(spec) == TINY:
        from gpic_lab.paths import state_root

        return build_tiny_qwen3(Path(cache or state_root() / "models") / "qwen3-tiny-random")
    p = Path(spec)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise UsageError(f"text encoder: {p} has no config.json (expected a transformers Qwen3 directory)")
        return p
    return _from_hub_cache(str(spec))


def hub_caches() -> list[Path]:
    """Where hub snapshots are looked for, read from the environment now: $HF_HUB_CACHE, $HF_HOME/hub, then the
    default user cache ~/.cache/huggingface/hub (the CLI points $HF_HOME into the project's state dir, so a model
    downloaded before with default settings is still found)."""
    found = []
    if os.environ.get("HF_HUB_CACHE"):
        found.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        found.append(Path(os.environ["HF_HOME"]) / "hub")
    found.append(Path.home() / ".cache" / "huggingface" / "hub")
    return list(dict.fromkeys(found))


def _from_hub_cache(repo_id: str) -> Path:
    """The snapshot directory of a hub id in one of `hub_caches()` (offline: nothing is downloaded)."""
    from huggingface_hub import snapshot_download

    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".")):
        raise UsageError(f"text encoder: {repo_id!r} is neither a directory nor a hub id (org/name)")
    for cache_dir in hub_caches():
        try:
            return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=str(cache_dir)))
        except Exception:  # noqa: BLE001 - a cache miss in one location: try the next
            continue
    raise UsageError(f"text encoder: {repo_id} is not a local directory and not in the Hugging Face cache "
                     f"({', '.join(str(c) for c in hub_caches())}); nothing is downloaded: fetch it first or "
                     "pass a directory")


class TextEncoder:
    """Frozen Qwen3: captions -> last hidden states [B, max_length, hidden] (no gradients).

    Args:
        model: a transformers `Qwen3Model` (moved to its device already).
        tokenizer: its tokenizer; padding is set to the right.
        max_length: tokens per caption (GPIC: 300), truncated and right-padded.
        path: where the weights came from (None for random weights).
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 300, path: Path | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = next(model.parameters()).device
        self.max_length = max_length
        self.hidden_size = int(model.config.hidden_size)
        self.path = path
        self.is_tiny = path is not None and (path / TINY_MARKER).is_file()

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: Any = None, dtype: Any = None,
             max_length: int = 300) -> TextEncoder:
        """From a model directory; device default CUDA when available, dtype bfloat16 on CUDA, float32 on CPU."""
        import torch
        from transformers import AutoTokenizer, Qwen3Model
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = Qwen3Model.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
        except (OSError, ValueError) as exc:
            raise GpicError(f"text encoder: cannot load {path}: {str(exc).splitlines()[0]}") from exc
        return cls(model.to(device), tokenizer, max_length, Path(path))

    def tokenize(self, captions: list[str]) -> dict[str, Any]:
        """input_ids / attention_mask [B, max_length] on the encoder's device."""
        enc = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v.to(self.device, non_blocking=True) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def __call__(self, captions: list[str]) -> Any:
        import torch

        with torch.no_grad():
            return self.model(**self.tokenize(captions)).last_hidden_state


def load_text_encoder(spec: str | os.PathLike[str], device: Any = None, dtype: Any = None, max_length: int = 300,
                      cache: str | os.PathLike[str] | None = None) -> TextEncoder:
    """`TextEncoder.load(resolve(spec, cache), ...)`."""
    return TextEncoder.load(resolve(spec, cache), device=device, dtype=dtype, max_length=max_length)


def random_qwen3_1p7b(device: Any = None, dtype: Any = None, max_length: int = 300) -> TextEncoder:
    """Qwen3-1.7B's architecture with random weights and a byte tokenizer: the same compute per caption (captions
    are always padded to `max_length`), for cost benchmarks only (its states are meaningless)."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    from gpic_lab.models.qwen_vl import _byte_tokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.device(device):
        model = Qwen3Model(Qwen3Config(**QWEN3_1P7B_SHAPE)).to(dtype or torch.bfloat16)
    return TextEncoder(model, _byte_tokenizer(), max_length)
