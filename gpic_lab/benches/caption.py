"""`gpic-lab bench caption [--model tiny|random-4b|PATH] [--levels short,medium]`: captioning throughput.

Ours: our captioner (batched, left-padded, the next batch preprocessed on other threads while this one generates,
OOM backoff) at --batch-size. Baseline (fair): the plain transformers recipe a competent user writes, batched at the
same size: chat template, processor with left padding, ``model.generate``, decode, one batch after the other, on the
same model object, images, prompts, token budgets and greedy settings. Both sides must generate the same number of
tokens (within 1%), else the bench exits 1 with ratio null. Also reported: the captioner one image at a time
(``one_at_a_time``, the former baseline). Per level: images/s, tokens/s, mean tokens, GPU utilisation (NVML,
sampled) and peak GPU memory. Projection: H100-hours for 100M captions against GPIC's ~1,500 H100-hours and its
measured 56.1 (short) / 49.3 (medium) images/s per H100.

Token budgets (``--fixed-tokens auto``, the random-4b default): GPIC's published caption lengths, median words per
level 7 / 17 / 39 / 131 (tag / short / medium / long; a third-party count of 53,637 released captions, whose CLIP
token medians 11 / 19 / 46 / 156 agree), at QWEN_TOKENS_PER_WORD Qwen tokens per word plus the end token.

Models: ``tiny`` (CPU default; random ~145k-parameter Qwen3-VL: numbers measure our code path, not a captioner),
``random-4b`` (GPU default; Qwen3-VL-4B's exact architecture with random weights and every caption generated to a
fixed, realistic length: the compute of the real model, no weights needed), or a real model directory.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections import namedtuple
from typing import Any

GPIC_IMAGES_PER_S = {"short": 56.1, "medium": 49.3}  # per H100, GPIC paper
MIX = {"tag": 0.01, "short": 0.45, "medium": 0.45, "long": 0.09}
GPIC_H100_HOURS = 1500
GPIC_MEDIAN_WORDS = {"tag": 7, "short": 17, "medium": 39, "long": 131}  # released GPIC captions, per level
# OUR ASSUMPTION: 1.3 Qwen tokens per English word (byte-level BPE of Qwen's 151k vocabulary, like other 100k-class
# tokenizers, averages about 1.3 tokens per word of prose with its punctuation); GPIC's own CLIP counts (49k vocab)
# give 1.0-1.3 content tokens per word on the same captions
QWEN_TOKENS_PER_WORD = 1.3
TOKEN_TOLERANCE = 0.01  # both sides must generate the same number of tokens within 1%
_Item = namedtuple("_Item", "key")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="shards whose images to caption (default: data/sample/train)")
    parser.add_argument("--model", default=None, help="tiny | random-4b | model dir (default: random-4b on CUDA, "
                                                      "tiny on CPU)")
    parser.add_argument("--levels", default=None, help="comma-separated levels (default short,medium; --quick: short)")
    parser.add_argument("--images", type=int, default=None, help="images per level (default 256 GPU / 16 CPU; "
                                                                 "--quick: two batches)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 64 GPU / 8 CPU)")
    parser.add_argument("--baseline-images", type=int, default=None, help="images for the one-at-a-time figure")
    parser.add_argument("--image-size", default="590x480", help="resize every image to WxH (GPIC-typical)")
    parser.add_argument("--max-pixels", type=int, default=None, help="processor max pixels")
    parser.add_argument("--fixed-tokens", default=None,
                        help="'auto' (random-4b default: GPIC's published median caption lengths in Qwen tokens), "
                             "'off', or level=N,... budgets generated exactly")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")


def caption_lengths() -> dict[str, int]:
    """Typical caption length in Qwen tokens per level (end token included), from GPIC's published median words."""
    return {level: int(round(QWEN_TOKENS_PER_WORD * words)) + 1 for level, words in GPIC_MEDIAN_WORDS.items()}


def load_images(paths: list[str], n: int, size: tuple[int, int]) -> list[Any]:
    """n RGB images of the given size, cycling through the shards' images."""
    from PIL import Image

    from gpic_lab.paths import sample_dir
    from gpic_lab.shards.reader import iter_samples, list_shards

    shards = list_shards(paths or [sample_dir() / "train"])
    base = [Image.open(io.BytesIO(s.image)).convert("RGB").resize(size, Image.BICUBIC)
            for s in iter_samples(shards)]
    if not base:
        raise RuntimeError("no images in the given shards")
    return [base[i % len(base)] for i in range(n)]


class GpuSampler:
    """Mean GPU utilisation over a block, from NVML every 100 ms (None without NVML/CUDA)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML: utilisation is reported as null
            self._handle = None

    def __enter__(self) -> GpuSampler:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._handle is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(run: Any, images: list[Any], batch: int) -> dict[str, Any]:
    """Time ``run(images)`` (a list of {"n_tokens", ...} back) after one warm-up batch (kernels, allocator):
    images/s, tokens/s, GPU util and peak memory."""
    import torch

    run(images[:min(batch, len(images))])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _sync()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        out = run(images)
        _sync()
        seconds = time.perf_counter() - t0
    tokens = sum(r["n_tokens"] for r in out)
    return {"images": len(images), "batch": batch, "seconds": round(seconds, 3),
            "images_per_s": round(len(images) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "mean_tokens": round(tokens / len(images), 1), "gpu_util_mean": gpu.mean,
            "gpu_mem_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}


def measure(captioner: Any, images: list[Any], level: str, batch: int) -> dict[str, Any]:
    """Caption ``images`` at ``level`` in batches of ``batch``; images/s, tokens/s, GPU util and memory."""
    from gpic_lab.caption.captioner import run_batches

    def run(part: list[Any]) -> list[dict[str, Any]]:
        return run_batches(captioner, [(_Item(f"img{i}"), level, im) for i, im in enumerate(part)], batch)

    return _timed(run, images, batch)


def hf_batched(captioner: Any, images: list[Any], level: str, batch: int) -> list[dict[str, Any]]:
    """The baseline: the plain transformers recipe, batch after batch on this thread, with the captioner's model,
    processor, prompt, budget and greedy settings (and its fixed-length mode, for random weights)."""
    import torch

    from gpic_lab.models.qwen_vl import build_messages

    proc, model = captioner.processor, captioner.model_obj
    budget = captioner.max_new_tokens[level]
    text = proc.apply_chat_template(build_messages(captioner.prompts[level]), tokenize=False, add_generation_prompt=True)
    tok = proc.tokenizer
    tok.padding_side = "left"
    pad = model.generation_config.pad_token_id if model.generation_config.pad_token_id is not None else tok.pad_token_id
    eos = model.generation_config.eos_token_id or tok.convert_tokens_to_ids("<|im_end|>")
    extra = {"min_new_tokens": budget, "suppress_tokens": [pad]} if captioner.fixed_tokens else {}
    stops = set(eos if isinstance(eos, list) else [eos]) | {pad}
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        inputs = proc(text=[text] * len(chunk), images=chunk, padding=True, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=budget, pad_token_id=pad, eos_token_id=eos,
                                 **captioner.sampling, **extra)
        for row in ids[:, inputs["input_ids"].shape[1]:].tolist():
            n = next((j for j, t in enumerate(row) if t in stops), len(row))
            out.append({"text": tok.decode(row[:n], skip_special_tokens=True).strip(), "n_tokens": n})
    return out


def measure_baseline(captioner: Any, images: list[Any], level: str, batch: int) -> dict[str, Any]:
    """`measure`'s figures for `hf_batched` (warm-up batch first)."""
    return _timed(lambda part: hf_batched(captioner, part, level, batch), images, batch)


def projection(rows: dict[str, dict[str, Any]], on_h100: bool) -> dict[str, Any]:
    """H100-hours for 100M captions per measured level vs GPIC's rates (meaningful on an H100 only)."""
    out: dict[str, Any] = {"valid": on_h100, "gpic_h100_hours_total": GPIC_H100_HOURS}
    for level, row in rows.items():
        out[f"{level}_h100_hours_100M"] = round(1e8 / row["ours"]["images_per_s"] / 3600, 1)
        if level in GPIC_IMAGES_PER_S:
            out[f"{level}_gpic_h100_hours_100M"] = round(1e8 / GPIC_IMAGES_PER_S[level] / 3600, 1)
            out[f"{level}_vs_gpic"] = round(row["ours"]["images_per_s"] / GPIC_IMAGES_PER_S[level], 3)
    if all(level in rows for level in MIX):
        per_image = sum(p / rows[level]["ours"]["images_per_s"] for level, p in MIX.items())
        out["mix_h100_hours_100M"] = round(1e8 * per_image / 3600, 1)
    else:
        out["mix_h100_hours_100M"] = None  # needs --levels tag,short,medium,long
    return out


def _budgets(spec: str | None, model: str) -> dict[str, int] | None:
    if spec in (None, "auto"):
        return caption_lengths() if (spec == "auto" or model == "random-4b") else None
    if spec == "off":
        return None
    return {k: int(v) for k, v in (part.split("=", 1) for part in spec.split(","))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gpic_lab.caption.captioner import make_captioner

    cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    model = args.model or ("random-4b" if cuda else "tiny")
    levels = (args.levels or ("short" if args.quick else "short,medium")).split(",")
    batch = args.batch_size or (64 if cuda else 8)
    n = args.images or (2 * batch if args.quick else (256 if cuda else 16))  # quick: two batches (one overlap)
    n_base = args.baseline_images or min(n, 16 if cuda else 4)
    fixed = _budgets(args.fixed_tokens, model)
    w, h = (int(x) for x in args.image_size.lower().split("x"))
    print(f"bench caption: model={model} device={'cuda' if cuda else 'cpu'} levels={levels} images={n} "
          f"batch={batch} fixed_tokens={fixed}", file=sys.stderr)
    t0 = time.perf_counter()
    captioner = make_captioner(model, "transformers", device=args.device, max_pixels=args.max_pixels,
                               max_new_tokens=fixed, fixed_tokens=bool(fixed))
    load_s = time.perf_counter() - t0
    images = load_images(args.paths, n, (w, h))
    rows: dict[str, dict[str, Any]] = {}
    problems = []
    for level in levels:
        ours = measure(captioner, images, level, batch)
        base = measure_baseline(captioner, images, level, batch)
        single = measure(captioner, images[:n_base], level, 1)
        from gpic_lab.caption.levels import load_prompt

        prompt_tokens = len(captioner.processor.tokenizer(load_prompt(level)[0])["input_ids"])
        rows[level] = {"ours": ours, "baseline": base, "one_at_a_time": single, "prompt_tokens": prompt_tokens}
        if abs(ours["mean_tokens"] - base["mean_tokens"]) > TOKEN_TOLERANCE * max(base["mean_tokens"], 1.0):
            problems.append(f"{level}: ours generated {ours['mean_tokens']} tokens per caption, the baseline "
                            f"{base['mean_tokens']}")
        print(f"  {level}: ours {ours['images_per_s']:.2f} img/s ({ours['tokens_per_s']:.0f} tok/s, "
              f"GPU {ours['gpu_util_mean']}%, {ours['gpu_mem_peak_gb']} GB) vs plain batched generate "
              f"{base['images_per_s']:.2f} img/s, one at a time {single['images_per_s']:.2f} img/s", file=sys.stderr)
    first = rows[levels[0]]
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    on_h100 = cuda and "H100" in name and model != "tiny"
    label = (f"{model} on {name}" + ("" if on_h100 else
             ": NOT comparable with GPIC's H100 numbers (tiny random model and/or no H100)"))
    from gpic_lab.benches.record import gate

    return gate({
            "name": "caption", "unit": f"images/s ({levels[0]} captions)", "ours": first["ours"]["images_per_s"],
            "baseline": first["baseline"]["images_per_s"],
            "ratio": round(first["ours"]["images_per_s"] / first["baseline"]["images_per_s"], 3),
            "ratio_vs_one_at_a_time": round(first["ours"]["images_per_s"] / first["one_at_a_time"]["images_per_s"], 3),
            "baseline_is": f"plain transformers generate, batched at {batch}",
            "label": label, "device": name, "model": model, "model_warning": captioner.model_warning,
            "fixed_tokens": fixed, "image_size": [w, h], "model_load_s": round(load_s, 2), "levels": rows,
            "projection": projection(rows, on_h100), "gpic_images_per_s": GPIC_IMAGES_PER_S,
            "budgets_from": f"GPIC median words {GPIC_MEDIAN_WORDS} x {QWEN_TOKENS_PER_WORD} Qwen tokens per word + 1"},
        problems)

