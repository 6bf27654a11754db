"""`gpic-lab bench train [PATH...] [--config NAME] [--quick]`: training images/s per device of the JiT-T2I baseline
fed by our loader vs a plain loop, and on a GPU the model FLOPs utilisation.

Both sides run the same model, text encoder, loss and AdamW step from the same initial weights, on the same shards
(default: synthetic GPIC-sized JPEGs), with the same per-device batch.
- ours: `gpic_lab.baseline.data.OrderedBatches` (our loader: DCT-scaled decode + OpenCV resize in the workers,
  uint8 batches in shared memory, pinned, non-blocking copies);
- baseline: a stock `torch.utils.data.DataLoader` over `webdataset` + PIL (`.decode("pil")`, PIL bicubic crop of
  scale [0.8, 1.0] + resize 256, uint8 [B,3,H,W] like ours) with the same workers, prefetch factor and pinning;
- baseline_serial: the same plain loop with no DataLoader workers (data and compute strictly one after the other).
The bench fails (exit 1, ratio null, the reason in ``mismatch``) if a side produces a non-finite loss, if the two
sides' pixel statistics disagree (a decoding or scaling mismatch), or if our loader repeats a sample within the run.
GPIC's budget (100M images in 40 h on 8 GPUs) is 86.8 images/s per H100 for gpic-1.1b: the goal is to beat it.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s (datasheets)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="shards (default: synthetic GPIC-sized shards)")
    parser.add_argument("--config", default=None, help="tiny | base | gpic-1.1b (default: gpic-1.1b on CUDA, tiny on CPU)")
    parser.add_argument("--batch", type=int, default=None, help="per-device batch (default: 32 on CUDA as GPIC, 8 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per side (default 20; --quick 6)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, allocator, workers)")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds, medians reported (default 3; --quick 1)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores - 2, at least 1)")
    parser.add_argument("--text-encoder", default=None,
                        help="hub id/dir/tiny; default: the config's if cached, else random weights of its shape")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")


class _Side:
    """Per-side accumulators: losses, pixel moments, keys."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.sum = self.sq = 0.0
        self.n = 0
        self.keys: list[str] = []

    def add(self, batch: dict[str, Any], loss: Any) -> None:
        import torch

        x = batch["image"]
        x = x.float().div(127.5).sub(1) if x.dtype == torch.uint8 else x.float() * 2 - 1
        self.sum += float(x.mean()) * x.numel()
        self.sq += float(x.pow(2).mean()) * x.numel()
        self.n += x.numel()
        self.losses.append(float(loss) / max(1, len(batch["key"])))
        self.keys += list(batch["key"])

    def moments(self) -> tuple[float, float]:
        mean = self.sum / max(1, self.n)
        return mean, math.sqrt(max(0.0, self.sq / max(1, self.n) - mean * mean))


def _baseline_batches(shards: list[str], workers: int, batch: int) -> Any:
    """A stock DataLoader over webdataset with PIL decode and the same crop/resize, uint8 [B,3,H,W] as ours, with our
    loader's settings (prefetch factor 4; pinned memory on CUDA)."""
    import torch

    from gpic_lab.benches.loader import baseline_loader

    for keys, images, captions in baseline_loader(shards, workers, batch, pin=torch.cuda.is_available(), keys=True):
        yield {"image": images, "key": list(keys), "caption": list(captions)}


def _ours_batches(shards: list[str], workers: int, batch: int) -> Any:
    from gpic_lab.baseline.data import OrderedBatches

    return iter(OrderedBatches(shards, None, 0, 1, workers, batch, seed=0, shuffle_buffer=64))


def _measure(ctx: Any, batches: Any, steps: int, warmup: int) -> tuple[float, _Side]:
    """Images/s over `steps` steps after `warmup` untimed ones (CUDA synchronised at both ends)."""
    import torch

    from gpic_lab.baseline.step import train_step

    side, images, start = _Side(), 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss, _ = train_step(ctx, batch, 0, 1e-4)
        if i >= warmup:
            images += len(batch["key"])
            side.add(batch, loss)
        if i + 1 == warmup + steps:
            break
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start), side


def _encoder(cfg: Any, spec: str | None, device: Any) -> tuple[Any, str]:
    from gpic_lab.baseline import text_encoder as te
    from gpic_lab.errors import UsageError

    try:
        return te.load_text_encoder(spec or cfg.text_encoder, device=device, max_length=cfg.text_len), spec or cfg.text_encoder
    except UsageError:
        if spec is not None or cfg.text_dim != 2048:
            raise
        print("text encoder not cached: random weights of Qwen3-1.7B's shape (same cost)", file=sys.stderr)
        return te.random_qwen3_1p7b(device, max_length=cfg.text_len), "random Qwen3-1.7B architecture"


def _peak(device: Any) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _context(args: argparse.Namespace, cfg: Any, device: Any, batch: int) -> tuple[Any, Any, str]:
    import torch

    from gpic_lab.baseline.model import build_model
    from gpic_lab.baseline.step import StepContext, make_optimizer

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model = build_model(cfg, device, seed=0)
    encoder, enc_name = _encoder(cfg, args.text_encoder, device)
    ctx = StepContext(model, model, encoder, make_optimizer(model), None, cfg, device, 1, batch, batch, seed=0,
                      bf16=device.type == "cuda")
    return ctx, copy.deepcopy(model.state_dict()), enc_name


def _reset(ctx: Any, init: dict[str, Any]) -> None:
    from gpic_lab.baseline.step import make_optimizer

    ctx.raw.load_state_dict(init)
    ctx.optimizer = make_optimizer(ctx.raw)


def _check(ours: _Side, base: _Side, repeated_shards: bool) -> str | None:
    if not all(math.isfinite(v) for v in ours.losses + base.losses):
        return "non-finite loss"
    (m1, s1), (m2, s2) = ours.moments(), base.moments()
    if abs(m1 - m2) > 0.1 or abs(s1 - s2) > 0.1:
        return f"pixel statistics differ: ours mean/std {m1:.3f}/{s1:.3f}, baseline {m2:.3f}/{s2:.3f}"
    if not repeated_shards and len(set(ours.keys)) != len(ours.keys):
        return "our loader repeated a sample"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gpic_lab.baseline.config import get_config, gpic_images_per_s_per_gpu, train_flops_per_image
    from gpic_lab.baseline.report import machine
    from gpic_lab.benches.loader import synthetic_shards
    from gpic_lab.shards.reader import iter_samples, list_shards

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = get_config(args.config or ("gpic-1.1b" if device.type == "cuda" else "tiny"))
    batch = args.batch or (32 if device.type == "cuda" else 8)
    steps = args.steps or (6 if args.quick else 20)
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 2)
    if device.type == "cpu":  # the training step gets the cores the workers leave (oversubscription is erratic)
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - workers))
    ctx, init, enc_name = _context(args, cfg, device, batch)
    need = (steps + args.warmup + 2) * batch
    with tempfile.TemporaryDirectory(prefix="gpic-bench-train-") as tmp:
        shards = list_shards(args.paths) if args.paths else synthetic_shards(Path(tmp), 2, need // 2 + batch)
        per_pass = sum(1 for _ in iter_samples(shards, images=False))
        repeats = max(1, -(-(need + batch) // per_pass))  # small corpora repeat (then keys repeat by design)
        shards = shards * repeats
        rates: dict[str, list[float]] = {}
        sides: dict[str, _Side] = {}
        for r in range(args.rounds or (1 if args.quick else 3)):
            for name, make, w in (("ours", _ours_batches, workers), ("baseline", _baseline_batches, workers),
                                  ("baseline_serial", _baseline_batches, 0)):
                _reset(ctx, init)
                rate, sides[name] = _measure(ctx, make(shards, w, batch), steps, args.warmup)
                rates.setdefault(name, []).append(rate)
                print(f"round {r}: {name}: {rate:.2f} images/s", file=sys.stderr)
    problem = _check(sides["ours"], sides["baseline"], repeats > 1)
    ours, base, serial = (statistics.median(rates[k]) for k in ("ours", "baseline", "baseline_serial"))
    flops, peak = train_flops_per_image(cfg), _peak(device)
    gpic = gpic_images_per_s_per_gpu()
    result = {"name": "train", "unit": f"training images/s per device ({cfg.name}, batch {batch})",
            "ours": round(ours, 3), "baseline": round(base, 3), "ratio": round(ours / base, 3),
            "baseline_serial": round(serial, 3),
            "ratio_rounds": [round(a / b, 3) for a, b in zip(rates["ours"], rates["baseline"], strict=True)], "config": cfg.name,
            "batch": batch, "steps": steps, "workers": workers, "device": machine(), "text_encoder": enc_name,
            "train_tflop_per_image": round(flops / 1e12, 4), "mfu": round(ours * flops / peak, 4) if peak else None,
            "gpic_images_per_s_per_gpu": round(gpic, 1),
            "goal": "ours > 86.8 images/s per H100 for gpic-1.1b (GPIC: 100M images in 40 h on 8 GPUs)",
            "goal_met": (ours > gpic) if (cfg.name == "gpic-1.1b" and peak) else None,
            "final_loss_ours": round(sides["ours"].losses[-1], 5), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                               time.gmtime())}
    from gpic_lab.benches.record import gate

    return gate(result, [problem])
