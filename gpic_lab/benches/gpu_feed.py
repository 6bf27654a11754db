"""`gpic-lab bench gpu_feed [PATH...] [--model jit-h|jit-l|jit-b] [--workers N] [--batch B] [--steps N]`: how busy
one GPU stays when a JiT-sized training step is fed from our loader vs the webdataset + PIL baseline.

Both loaders run with the same DataLoader settings (workers, batch, prefetch factor 4, pinned memory) and hand
uint8 [B,3,H,W] batches to the same step, which copies them to the GPU (non-blocking) and converts them there; the
baseline decodes and resizes with PIL (the same crop draw), ours with libjpeg-turbo's DCT scaling and OpenCV.

The dummy step is a pixel-space ViT on 16×16 patches of 256×256 images (JiT-style: noisy patches in, clean
patches out, MSE, AdamW, bf16 autocast) at GPIC's per-GPU batch (global 256 / 8 GPUs = 32). GPU busy time is
measured without synchronising: a CUDA event pair brackets every step, so
busy = Σ(step end − step start) / (last end − first start); an idle gap while the loader is late shows up as
time between one step's end and the next one's start. The compute ceiling (the same step on one batch kept on
the GPU) is reported too. Needs CUDA; without it the bench says so and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODELS = {"jit-b": (768, 12, 12), "jit-l": (1024, 24, 16), "jit-h": (1280, 32, 16)}  # width, depth, heads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="shards (default: synthetic GPIC-sized shards)")
    parser.add_argument("--model", choices=sorted(MODELS), default="jit-h", help="the training step the loader feeds")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores - 2)")
    parser.add_argument("--batch", type=int, default=32, help="per-GPU batch (GPIC: 256 / 8 GPUs)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default 60; --quick 20)")
    parser.add_argument("--decode", choices=("workers", "batch"), default="workers",
                        help="batch: workers only read the shards, each batch is decoded on the GPU (nvJPEG)")


def dummy_model(name: str) -> Any:
    """A JiT-sized pixel-space ViT: patch embedding, pre-norm transformer blocks, linear patch decoder."""
    import torch

    width, depth, heads = MODELS[name]
    layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True)
    return torch.nn.ModuleDict({
        "embed": torch.nn.Linear(768, width), "blocks": torch.nn.TransformerEncoder(layer, depth),
        "head": torch.nn.Linear(width, 768),
    })


def _step(model: Any, opt: Any, images_u8: Any, pos: Any) -> None:
    import torch

    x = images_u8.cuda(non_blocking=True).float().div_(127.5).sub_(1.0)
    patches = x.unfold(2, 16, 16).unfold(3, 16, 16).permute(0, 2, 3, 1, 4, 5).reshape(x.shape[0], 256, 768)
    t = torch.rand(x.shape[0], 1, 1, device=x.device)
    noisy = t * patches + (1 - t) * torch.randn_like(patches)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model["head"](model["blocks"](model["embed"](noisy) + pos))
    loss = torch.nn.functional.mse_loss(out.float(), patches)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _measure(model: Any, opt: Any, pos: Any, batches: Any, steps: int, warmup: int = 5) -> dict[str, float]:
    import torch

    events, n_images = [], 0
    it = iter(batches)
    for i in range(warmup + steps):
        images = next(it)
        if i >= warmup:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        _step(model, opt, images, pos)
        if i >= warmup:
            end.record()
            events.append((start, end))
            n_images += images.shape[0]
    torch.cuda.synchronize()
    busy = sum(s.elapsed_time(e) for s, e in events)
    span = events[0][0].elapsed_time(events[-1][1])
    return {"gpu_busy": busy / span, "images_per_s": n_images / (span / 1000.0), "ms_per_step": busy / len(events)}


def _ours(shards: list[str], workers: int, batch: int, decode: str = "workers") -> Any:
    from gpic_lab.loader.augment import DeferredTrainTransform, TrainTransform
    from gpic_lab.loader.batch_decode import BatchDecoder
    from gpic_lab.loader.torch_loader import GpicIterableDataset, make_loader

    transform = DeferredTrainTransform() if decode == "batch" else TrainTransform()
    decoder = BatchDecoder(device="cuda")
    for b in make_loader(GpicIterableDataset(shards * 50, shuffle_buffer=256, seed=0, transform=transform),
                         batch_size=batch, num_workers=workers, pin_memory=True):
        yield decoder(b)["image"]


def _baseline(shards: list[str], workers: int, batch: int) -> Any:
    """webdataset + PIL with our DataLoader settings, pinned like ours, uint8 [B,3,H,W] handed over as it comes (the
    training step converts both sides' batches on the GPU alike)."""
    from gpic_lab.benches.loader import baseline_loader

    for images, _ in baseline_loader(shards * 50, workers, batch, pin=True):
        yield images


def run(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import torch

    from gpic_lab.errors import GpicError

    if not torch.cuda.is_available():
        raise GpicError("bench gpu_feed needs a CUDA GPU (not measured on this machine)")
    steps = args.steps or (20 if args.quick else 60)
    workers = args.workers or max(1, (os.cpu_count() or 4) - 2)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = dummy_model(args.model).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    pos = torch.zeros(1, 256, MODELS[args.model][0], device="cuda")
    fixed = torch.randint(0, 255, (args.batch, 3, 256, 256), dtype=torch.uint8).pin_memory()
    ceiling = _measure(model, opt, pos, iter(lambda: fixed, None), steps)
    print(f"compute ceiling ({args.model}, batch {args.batch}): {ceiling['images_per_s']:.0f} img/s", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-gpufeed-") as tmp:
        from gpic_lab.benches.loader import synthetic_shards
        from gpic_lab.shards.reader import list_shards

        shards = list_shards(args.paths) if args.paths else synthetic_shards(Path(tmp), 4, 300)
        started = time.perf_counter()
        ours = _measure(model, opt, pos, _ours(shards, workers, args.batch, args.decode), steps)
        base = _measure(model, opt, pos, _baseline(shards, workers, args.batch), steps)
    for label, r in (("ours", ours), ("webdataset+PIL", base)):
        print(f"{label}: GPU busy {r['gpu_busy']:.1%}, {r['images_per_s']:.0f} img/s", file=sys.stderr)
    return {"name": "gpu_feed", "unit": "GPU busy fraction (JiT-sized step fed by the loader)",
            "ours": round(ours["gpu_busy"], 4), "baseline": round(base["gpu_busy"], 4),
            "ratio": round(ours["gpu_busy"] / base["gpu_busy"], 3), "goal": "ours > 0.90",
            "model": args.model, "decode": args.decode, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "batch": args.batch, "workers": workers, "steps": steps, "device": torch.cuda.get_device_name(0),
            "ours_images_per_s": round(ours["images_per_s"], 1), "baseline_images_per_s": round(base["images_per_s"], 1),
            "ceiling_images_per_s": round(ceiling["images_per_s"], 1), "ms_per_step": round(ceiling["ms_per_step"], 2),
            "seconds": round(time.perf_counter() - started, 1)}
