"""Qwen3-VL: tiny random builder (tests, CPU demo), real loader (local dir or hub id through the HF cache),
batched generation.

Why not ``AutoProcessor.from_pretrained(model, min_pixels=..., max_pixels=...)``: the Qwen3-VL repos name
``Qwen3VLProcessor``, whose video-processor slot loads ``Qwen3VLVideoProcessor``, and that class needs torchvision
(transformers 5.23: ``ImportError`` without it; repos without a video config fail with ``OSError``). No torchvision
wheel matches the CPU torch build, so we load the public parts with their own ``from_pretrained``: the tokenizer
(``AutoTokenizer``) and the PIL image processor (``Qwen2VLImageProcessorPil``, configured from the model's
processor config, pixel bounds as ``size``), joined by ``ImageOnlyQwen3VLProcessor`` (the stock processor without
its video slot). Image inputs are identical; videos are never captioned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, UsageError

TINY_MARKER = "gpic_lab_tiny_random.json"
TINY_WARNING = ("tiny randomly initialised Qwen3-VL (gpic_lab.models.qwen_vl.build_tiny_qwen3vl): captions are "
                "PLACEHOLDERS (random bytes), not descriptions")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
DEFAULT_MIN_PIXELS = 256 * 28 * 28
DEFAULT_MAX_PIXELS = 1280 * 28 * 28
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _processor_class() -> type:
    """``Qwen3VLProcessor`` without the torchvision-only video-processor slot (defined lazily: heavy import)."""
    global _PROC_CLS
    if _PROC_CLS is None:
        from transformers import Qwen3VLProcessor

        class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
            """Image-only Qwen3-VL processor: PIL image processor + tokenizer, no video processor."""

            def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                         chat_template: str | None = None, **kwargs: Any) -> None:
                Qwen3VLProcessor.__init__(self, image_processor, tokenizer, None, chat_template=chat_template,
                                          **kwargs)

        _PROC_CLS = ImageOnlyQwen3VLProcessor
    return _PROC_CLS


_PROC_CLS: type | None = None


def _byte_tokenizer() -> Any:
    """A byte-level ``Qwen2Tokenizer`` built in code (256 byte symbols + the Qwen specials, no merges)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS],
                         special_tokens=True)
    tokenizer.padding_side = "left"
    return tokenizer


def _approx_bpe_tokenizer(corpus: Sequence[str] = (), vocab_size: int = 2000) -> Any:
    """A byte-level BPE trained in code on ``corpus`` (the caller's prompts) and the sample corpus' captions.

    Stands in for Qwen's tokenizer in ``random_qwen3vl_4b``: a prompt gets about as many tokens as Qwen's BPE
    gives it (the short prompt: ~230 vs 900 with the byte tokenizer), so prefill cost is realistic.
    """
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    from gpic_lab.paths import sample_dir
    from gpic_lab.shards.schema import CAPTION_TYPES

    texts = list(corpus)
    captions = sample_dir() / "captions.json"
    if captions.is_file():
        texts += [c[lv] for c in json.loads(captions.read_text()).values() for lv in CAPTION_TYPES if c.get(lv)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    from tokenizers import AddedToken

    tokenizer.add_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS],
                         special_tokens=True)
    tokenizer.padding_side = "left"
    return tokenizer


def _image_processor(min_pixels: int, max_pixels: int, patch_size: int = 16) -> Any:
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=patch_size, merge_size=2, temporal_patch_size=2,
                                    size={"shortest_edge": min_pixels, "longest_edge": max_pixels})


TINY_SHAPE: dict[str, dict[str, Any]] = {
    "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16,
                 rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3],
                                  "mrope_interleaved": True}),
    "vision": dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
                   temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=64, deepstack_visual_indexes=[0]),
}
# Qwen3-VL-4B-Instruct's published architecture (config.json of the hub repo): same compute per token.
QWEN3VL_4B_SHAPE: dict[str, dict[str, Any]] = {
    "text": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                 num_key_value_heads=8, head_dim=128, vocab_size=151936, rms_norm_eps=1e-6, tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
                                  "mrope_interleaved": True}),
    "vision": dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                   spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560, num_position_embeddings=2304,
                   deepstack_visual_indexes=[5, 11, 17], hidden_act="gelu_pytorch_tanh"),
}
RANDOM_4B_WARNING = ("randomly initialised Qwen3-VL-4B architecture (gpic_lab.models.qwen_vl.random_qwen3vl_4b): real compute "
                     "cost per token, but captions are PLACEHOLDERS (random tokens)")


def _config(config_cls: type, ids: dict[str, int], shape: dict[str, dict[str, Any]]) -> Any:
    """A Qwen3VLConfig of the given text/vision shape wired to our tokenizer's special-token ids."""
    text = {"vocab_size": 0, **shape["text"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    text["vocab_size"] = max(text["vocab_size"], max(ids.values()) + 1)
    return config_cls(
        text_config=text, vision_config=dict(shape["vision"]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=bool(shape["text"].get("tie_word_embeddings", False)))


def build_tiny_qwen3vl(out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Save a tiny random Qwen3-VL (real config classes, ~145k params) + PIL processor + tokenizer.

    Args:
        out_dir: directory to write (created; existing files overwritten). Loadable with ``load_qwen3vl``.
        seed: torch seed for the random weights (same seed -> same weights -> same placeholder captions).
    """
    import json

    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = _config(Qwen3VLConfig, ids, TINY_SHAPE)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    processor = _processor_class()(image_processor=_image_processor(64 * 64, 128 * 128), tokenizer=tokenizer,
                                   chat_template=CHAT_TEMPLATE)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / TINY_MARKER).write_text(json.dumps({"warning": TINY_WARNING, "seed": seed}) + "\n")
    return out


def random_qwen3vl_4b(device: str | None = None, dtype: Any = None, min_pixels: int | None = None,
                      max_pixels: int | None = None, attn_implementation: str = "sdpa", seed: int = 0,
                      shape: dict[str, dict[str, Any]] | None = None, corpus: Sequence[str] = ()) -> tuple[Any, Any]:
    """In-memory Qwen3-VL with the 4B architecture and random weights, plus the PIL processor (for throughput).

    Nothing is downloaded or saved; a small BPE trained in code stands in for Qwen's tokenizer (similar prompt
    lengths when ``corpus`` holds the prompts that will be sent; generated ids beyond it decode to nothing, so
    benches count tokens, not text). ``device="meta"`` builds it without memory (parameter counts).
    """
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    tokenizer = _approx_bpe_tokenizer(corpus)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = _config(Qwen3VLConfig, ids, shape or QWEN3VL_4B_SHAPE)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype,
                                                             attn_implementation=attn_implementation).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    processor = _processor_class()(
        image_processor=_image_processor(min_pixels or DEFAULT_MIN_PIXELS, max_pixels or DEFAULT_MAX_PIXELS),
        tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    return model, processor


def is_tiny(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a tiny random model written by ``build_tiny_qwen3vl``."""
    return (Path(path) / TINY_MARKER).is_file()


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """A local model dir, or a hub id (``Qwen/Qwen3-VL-4B-Instruct``) through the Hugging Face cache (downloaded
    when online, from the cache with ``HF_HUB_OFFLINE=1``; see ``gpic_lab.models.hub``)."""
    from gpic_lab.models.hub import resolve

    p = resolve(path, "Qwen3-VL")
    if not p.is_dir():
        raise UsageError(f"{path}: model directory not found")
    if not (p / "config.json").is_file():
        raise UsageError(f"{p}: not a model directory (no config.json)")
    return p


def load_qwen3vl(path: str | os.PathLike[str], device: str | None = None, dtype: Any = None,
                 min_pixels: int | None = None, max_pixels: int | None = None,
                 attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load a Qwen3-VL model (e.g. Qwen3-VL-4B-Instruct) and an image-only PIL processor.

    Args:
        path: local model directory or hub id (HF cache; downloaded when online).
        device: "cuda", "cuda:1", "cpu"...; default cuda when available, else cpu.
        dtype: torch dtype or its name; default bfloat16 on CUDA, float32 on CPU.
        min_pixels / max_pixels: image resolution bounds for the processor (default: the model's own).
        attn_implementation: default "flash_attention_2" when flash_attn is importable on CUDA, else "sdpa".
    """
    import torch
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

    model_dir = resolve_model_path(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    if attn_implementation is None:
        attn_implementation = "sdpa"
        if device.startswith("cuda"):
            try:
                import flash_attn  # noqa: F401

                attn_implementation = "flash_attention_2"
            except ImportError:
                pass
    try:
        model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=dtype,
                                                                attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        raise GpicError(f"{model_dir}: cannot load Qwen3-VL weights: {exc}".splitlines()[0]) from exc
    model = model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    image_processor = _load_image_processor(model_dir, min_pixels, max_pixels)
    template = getattr(tokenizer, "chat_template", None) or _read_template(model_dir) or CHAT_TEMPLATE
    processor = _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    return model, processor


def _read_template(model_dir: Path) -> str | None:
    f = model_dir / "chat_template.jinja"
    return f.read_text() if f.is_file() else None


def _load_image_processor(model_dir: Path, min_pixels: int | None, max_pixels: int | None) -> Any:
    """The PIL image processor from the model's processor config, with optional pixel bounds."""
    from transformers import Qwen2VLImageProcessorPil

    base = Qwen2VLImageProcessorPil.from_pretrained(model_dir)
    size = base.size
    lo = min_pixels or getattr(size, "shortest_edge", None) or getattr(base, "min_pixels", None) or DEFAULT_MIN_PIXELS
    hi = max_pixels or getattr(size, "longest_edge", None) or getattr(base, "max_pixels", None) or DEFAULT_MAX_PIXELS
    if lo > hi:
        raise UsageError(f"min_pixels {lo} > max_pixels {hi}")
    return Qwen2VLImageProcessorPil.from_pretrained(model_dir, size={"shortest_edge": lo, "longest_edge": hi})


def build_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image then the text prompt (Qwen3-VL chat format)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def prepare_inputs(processor: Any, images: list[Any], prompts: list[str], device: Any = None,
                   workers: int = 1) -> Any:
    """Chat-format, tokenize and preprocess a batch (left padding; keeps ``mm_token_type_ids``).

    ``workers > 1`` preprocesses chunks of the batch in threads and merges them (same tensors as one call).
    """
    if len(images) != len(prompts):
        raise UsageError(f"{len(images)} images but {len(prompts)} prompts")
    texts = [processor.apply_chat_template(build_messages(p), tokenize=False, add_generation_prompt=True)
             for p in prompts]
    processor.tokenizer.padding_side = "left"
    from gpic_lab.core.images import to_rgb

    rgb = [to_rgb(im) if getattr(im, "mode", "RGB") != "RGB" else im for im in images]
    n = max(1, min(workers, len(rgb)))
    if n == 1:
        inputs = processor(text=texts, images=rgb, return_tensors="pt", padding=True)
    else:
        from concurrent.futures import ThreadPoolExecutor

        bounds = [(len(rgb) * i // n, len(rgb) * (i + 1) // n) for i in range(n)]
        with ThreadPoolExecutor(n) as pool:
            parts = list(pool.map(lambda b: processor(text=texts[b[0]:b[1]], images=rgb[b[0]:b[1]],
                                                      return_tensors="pt", padding=True), bounds))
        inputs = _merge_left_padded(parts, processor.tokenizer.pad_token_id)
    return inputs.to(device) if device is not None else inputs


def _merge_left_padded(parts: list[Any], pad_id: int) -> Any:
    """Concatenate processor outputs of batch chunks: sequence tensors left-padded to the longest chunk."""
    import torch
    from transformers import BatchFeature

    width = max(p["input_ids"].shape[1] for p in parts)
    merged: dict[str, Any] = {}
    for key in parts[0].keys():
        if key in ("input_ids", "attention_mask", "mm_token_type_ids"):
            fill = pad_id if key == "input_ids" else 0
            merged[key] = torch.cat([torch.nn.functional.pad(p[key], (width - p[key].shape[1], 0), value=fill)
                                     for p in parts])
        else:
            merged[key] = torch.cat([p[key] for p in parts])
    return BatchFeature(merged)


def generate(model: Any, processor: Any, images: list[Any], prompts: list[str], max_new_tokens: int = 128,
             return_details: bool = False, **gen: Any) -> list[str] | list[dict[str, Any]]:
    """Batched generation: one caption per (image, prompt); greedy unless ``do_sample=True`` is passed.

    Args:
        images: PIL images (any mode; converted to RGB).
        prompts: one prompt per image.
        max_new_tokens: generation budget per caption.
        return_details: return dicts {text, n_tokens, truncated} instead of plain strings.
        **gen: extra ``model.generate`` keyword arguments (temperature, top_p, repetition_penalty...).
    """
    if not images:
        return []
    inputs = prepare_inputs(processor, images, prompts)
    return generate_from_inputs(model, processor, inputs, max_new_tokens, return_details, **gen)


def generate_from_inputs(model: Any, processor: Any, inputs: Any, max_new_tokens: int = 128,
                         return_details: bool = False, **gen: Any) -> list[str] | list[dict[str, Any]]:
    """``generate`` on inputs from ``prepare_inputs`` (lets a caller preprocess the next batch meanwhile)."""
    import torch

    inputs = inputs.to(model.device)
    gen.setdefault("do_sample", False)
    tok = processor.tokenizer
    eos = model.generation_config.eos_token_id or tok.convert_tokens_to_ids("<|im_end|>")
    pad = model.generation_config.pad_token_id
    pad = tok.pad_token_id if pad is None else pad
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos, **gen)
    new = out[:, inputs["input_ids"].shape[1]:]
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {pad}
    results = []
    for row in new.tolist():
        n = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
        text = tok.decode(row[:n], skip_special_tokens=True).strip()
        results.append({"text": text, "n_tokens": n, "truncated": n >= max_new_tokens})
    return results if return_details else [r["text"] for r in results]
