"""`gpic-lab bench caption [--model tiny|random-4b|PATH] [--levels short,medium]`: captioning throughput.

Ours: our captioner (batched, left-padded, size-sorted batches, OOM backoff) at --batch-size. Baseline: the same
captioner one image at a time, same model, same images, same run. Per level: images/s, tokens/s, mean tokens,
GPU utilisation (NVML, sampled) and peak GPU memory. Projection: H100-hours for 100M captions against GPIC's
~1,500 H100-hours and its measured 56.1 (short) / 49.3 (medium) images/s per H100.

Models: ``tiny`` (CPU default; random ~145k-parameter Qwen3-VL: numbers measure our code path, not a captioner),
``random-4b`` (GPU default; Qwen3-VL-4B's exact architecture with random weights and every caption generated to a
fixed, realistic length: the compute of the real model, no weights needed), or a real model directory.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from collections import namedtuple
from typing import Any

GPIC_IMAGES_PER_S = {"short": 56.1, "medium": 49.3}  # per H100, GPIC paper
MIX = {"tag": 0.01, "short": 0.45, "medium": 0.45, "long": 0.09}
GPIC_H100_HOURS = 1500
TOKENS_PER_WORD = 1.35  # English with Qwen's BPE, roughly
_Item = namedtuple("_Item", "key")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="shards whose images to caption (default: data/sample/train)")
    parser.add_argument("--model", default=None, help="tiny | random-4b | model dir (default: random-4b on CUDA, "
                                                      "tiny on CPU)")
    parser.add_argument("--levels", default=None, help="comma-separated levels (default short,medium; --quick: short)")
    parser.add_argument("--images", type=int, default=None, help="images per level (default 256 GPU / 16 CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 64 GPU / 8 CPU)")
    parser.add_argument("--baseline-images", type=int, default=None, help="images for the unbatched baseline")
    parser.add_argument("--image-size", default="590x480", help="resize every image to WxH (GPIC-typical)")
    parser.add_argument("--max-pixels", type=int, default=None, help="processor max pixels")
    parser.add_argument("--fixed-tokens", default=None,
                        help="'auto' (random-4b default: lengths from the sample corpus' honest captions), 'off', "
                             "or level=N,... budgets generated exactly")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")


def caption_lengths() -> dict[str, int]:
    """Typical caption length in tokens per level, from the sample corpus' hand-written captions."""
    from gpic_lab.paths import sample_dir

    captions = json.loads((sample_dir() / "captions.json").read_text())
    out = {}
    for level in ("tag", "short", "medium", "long"):
        words = [len(c[level].replace(",", " ").split()) for c in captions.values() if c.get(level)]
        out[level] = int(round(TOKENS_PER_WORD * sum(words) / max(len(words), 1))) + 1
    return out


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


def measure(captioner: Any, images: list[Any], level: str, batch: int) -> dict[str, Any]:
    """Caption ``images`` at ``level`` in batches of ``batch``; images/s, tokens/s, GPU util and memory."""
    import torch

    from gpic_lab.caption.captioner import run_batches

    items = [(_Item(f"img{i}"), level, im) for i, im in enumerate(images)]
    run_batches(captioner, items[:min(batch, len(items))], batch)  # warm-up (kernels, allocator)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _sync()
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        out = run_batches(captioner, items, batch)
        _sync()
        seconds = time.perf_counter() - t0
    tokens = sum(r["n_tokens"] for r in out)
    return {"images": len(images), "batch": batch, "seconds": round(seconds, 3),
            "images_per_s": round(len(images) / seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "mean_tokens": round(tokens / len(images), 1), "gpu_util_mean": gpu.mean,
            "gpu_mem_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}


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
    n = args.images or (8 if args.quick else (256 if cuda else 16))
    batch = args.batch_size or (64 if cuda else 8)
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
    for level in levels:
        ours = measure(captioner, images, level, batch)
        base = measure(captioner, images[:n_base], level, 1)
        from gpic_lab.caption.levels import load_prompt

        prompt_tokens = len(captioner.processor.tokenizer(load_prompt(level)[0])["input_ids"])
        rows[level] = {"ours": ours, "baseline": base, "prompt_tokens": prompt_tokens}
        print(f"  {level}: batched {ours['images_per_s']:.2f} img/s ({ours['tokens_per_s']:.0f} tok/s, "
              f"GPU {ours['gpu_util_mean']}%, {ours['gpu_mem_peak_gb']} GB) vs one-at-a-time "
              f"{base['images_per_s']:.2f} img/s", file=sys.stderr)
    first = rows[levels[0]]
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    on_h100 = cuda and "H100" in name and model != "tiny"
    label = (f"{model} on {name}" + ("" if on_h100 else
             ": NOT comparable with GPIC's H100 numbers (tiny random model and/or no H100)"))
    return {"name": "caption", "unit": f"images/s ({levels[0]} captions)", "ours": first["ours"]["images_per_s"],
            "baseline": first["baseline"]["images_per_s"],
            "ratio": round(first["ours"]["images_per_s"] / first["baseline"]["images_per_s"], 3),
            "label": label, "device": name, "model": model, "model_warning": captioner.model_warning,
            "fixed_tokens": fixed, "image_size": [w, h], "model_load_s": round(load_s, 2), "levels": rows,
            "projection": projection(rows, on_h100), "gpic_images_per_s": GPIC_IMAGES_PER_S}

