"""`gpic-lab bench eval [--quick] [--n N] [--pool N]`: throughput of the FD-DINOv2 evaluation.

Same run, same in-memory 256x256 PNGs (a pool of distinct synthetic images, cycled to N):
1. CPU preprocessing (decode + Pillow bicubic 224 stretch + ImageNet normalisation): ours (thread pool, one
   batched float32 normalisation) vs the straightforward per-image PIL -> torch pipeline (torchvision
   ToTensor/Normalize order) mapped over a thread pool of the same size (the baseline; ``--threads``, default the
   cores up to 16), and that pipeline in one loop for reference; outputs must be bit-identical (else exit 1, ratio
   null). `ours`/`baseline`/`ratio` report ours vs the threaded baseline.
2. The feature pass, decoding included, through `features.stream_features`: on CUDA a ViT-L/14-shaped DINOv2
   (random weights: throughput only, no real weights offline) in several precisions, over --gpu-n distinct images
   against a reference of distinct others, with the FD of each against the reference built in fp32 and
   |FD(p) - FD(fp32)|; without CUDA this is reported as "not measured: no CUDA", and the tiny random model runs
   the same pipeline end to end on CPU (labelled as such).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=None, help="images through the preprocessing (default 2000; "
                        "--quick 256); the GPU feature pass uses --gpu-n")
    parser.add_argument("--gpu-n", type=int, default=50_000, help="images through the GPU feature pass (default 50000)")
    parser.add_argument("--pool", type=int, default=None, help="distinct PNGs generated (default 500; --quick 64)")
    parser.add_argument("--batch-size", type=int, default=256, help="GPU batch size (default 256)")
    parser.add_argument("--threads", type=int, default=None, help="decode threads (default: cores, max 16)")


def _png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((256, 256), Image.BICUBIC)
    arr = np.clip(np.asarray(img, np.int16) + rng.normal(0, 12, (256, 256, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def make_pool(n: int, threads: int, first: int = 0) -> list[bytes]:
    """``n`` distinct 256x256 PNGs (seeds ``first`` .. ``first + n - 1``)."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(_png, range(first, first + n)))


def _one(b: bytes) -> Any:
    """One image the straightforward way: PIL open -> RGB -> resize -> tensor, /255, normalize."""
    import torch
    from PIL import Image

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    img = Image.open(io.BytesIO(b)).convert("RGB").resize((224, 224), Image.BICUBIC)
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)
    return t.sub(mean).div(std)


def naive(blobs: list[bytes], pool: ThreadPoolExecutor | None = None) -> Any:
    """The straightforward per-image pipeline (torchvision's ToTensor/Normalize order), stacked; over the threads of
    ``pool`` when given (the fair baseline: as many threads as ours), else in one loop."""
    import torch

    images = list(pool.map(_one, blobs)) if pool is not None else [_one(b) for b in blobs]
    return torch.stack(images).numpy()


def ours(blobs: list[bytes], pool: ThreadPoolExecutor) -> np.ndarray:
    from gpic_lab.evaluation.preprocess import reference_batch

    return reference_batch(blobs, pool, reference=False)


def _timed(fn: Any, *a: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def preprocessing(blobs: list[bytes], threads: int, chunk: int = 128) -> dict[str, Any]:
    """images/s over the same blobs (chunked so memory stays flat) of ours and of the straightforward per-image
    pipeline on the same number of threads (the baseline), and of that pipeline in one loop (for reference); plus
    an exactness check of every side against the others."""
    def chunks(fn: Any) -> Any:
        return lambda: [fn(blobs[i:i + chunk]) for i in range(0, len(blobs), chunk)]

    with ThreadPoolExecutor(threads) as pool:
        same = np.array_equal(ours(blobs[:16], pool), naive(blobs[:16], pool))  # also the warm-up of both sides
        t_ours = t_threaded = float("inf")
        for _ in range(2):  # interleaved, best of 2
            t_ours = min(t_ours, _timed(chunks(lambda b: ours(b, pool)))[1])
            t_threaded = min(t_threaded, _timed(chunks(lambda b: naive(b, pool)))[1])
    _, t_loop = _timed(chunks(naive))
    with ThreadPoolExecutor(1) as one:
        same = same and np.array_equal(naive(blobs[:16]), ours(blobs[:16], one))
    return {"ours_images_per_s": len(blobs) / t_ours, "naive_images_per_s": len(blobs) / t_threaded,
            "single_loop_images_per_s": len(blobs) / t_loop, "identical_tensors": bool(same), "threads": threads,
            "n": len(blobs)}


def feature_pass(model: Any, blobs: list[bytes], batch_size: int, threads: int) -> tuple[np.ndarray, float]:
    from gpic_lab.evaluation.features import stream_features

    items = ((i, b) for i, b in enumerate(blobs))
    t0 = time.perf_counter()
    feats = [f for _, f in stream_features(items, model, reference=False, batch_size=batch_size, threads=threads)]
    _sync()
    return np.concatenate(feats), time.perf_counter() - t0


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


PASS_NAMES = ("fp32", "bf16", "bf16-autocast", "fp16-autocast", "tf32")  # fp32 first: it is the reference
FD_TOLERANCE = 0.05


def _gpu_normalize_identical(blobs: list[bytes]) -> bool:
    """The on-GPU normalisation gives the same float32 bits as the CPU reference `preprocess.normalize`."""
    import torch

    from gpic_lab.evaluation.preprocess import decode_generated, normalize, normalize_torch

    u8 = np.stack([decode_generated(b) for b in blobs])
    return bool(np.array_equal(normalize_torch(torch.from_numpy(u8).cuda()).cpu().numpy(), normalize(u8)))


def gpu(pool_blobs: list[bytes], n: int, batch_size: int, threads: int) -> dict[str, Any]:
    """ViT-L/14 geometry, random weights: images/s of each precision (decode included), FD agreement with fp32, and
    the fastest precision within the protocol's tolerance (|dFD| < 0.05) against the goal (50K in < 90 s)."""
    import torch
    from transformers import Dinov2Model

    from gpic_lab.evaluation.fd import fd_from_features
    from gpic_lab.models.dinov2 import _config, apply_hub_semantics, precision_context, weights_dtype

    torch.manual_seed(0)
    base = Dinov2Model(_config()).eval()
    print(f"bench eval: generating {n} + {n // 2} distinct PNGs for the feature pass", file=sys.stderr)
    blobs = make_pool(n, threads, first=len(pool_blobs))  # every image distinct: |dFD| is not a small-pool artefact
    ref_blobs = make_pool(n // 2, threads, first=len(pool_blobs) + n)
    res: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "model": "DINOv2 ViT-L/14 shape, random weights",
                           "n": n, "batch_size": batch_size, "threads": threads}
    feats: dict[str, np.ndarray] = {}
    for name in PASS_NAMES:
        model = apply_hub_semantics(Dinov2Model(base.config).eval())
        model.load_state_dict(base.state_dict())
        model = model.to("cuda", dtype=weights_dtype(name))
        with precision_context(name):
            feature_pass(model, blobs[: 2 * batch_size], batch_size, threads)  # warm-up (cudnn, allocator)
            f, secs = feature_pass(model, blobs, batch_size, threads)
            if name == "fp32":
                feats["ref"], _ = feature_pass(model, ref_blobs, batch_size, threads)
        feats[name] = f
        res[name] = {"images_per_s": n / secs, "seconds": secs, "seconds_per_50k": 50_000 * secs / n,
                     "fd_vs_ref": fd_from_features(f, feats["ref"])["fd"],
                     "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30}
        if name != "fp32":
            res[name]["fd_abs_diff_vs_fp32"] = abs(res[name]["fd_vs_ref"] - res["fp32"]["fd_vs_ref"])
        print(f"bench eval: {name}: {n / secs:.0f} images/s, FD {res[name]['fd_vs_ref']:.4f}", file=sys.stderr)
        del model
        torch.cuda.empty_cache()
    res["normalize_identical_on_gpu"] = _gpu_normalize_identical(pool_blobs[:64])
    res["fd_abs_diff_bf16_vs_fp32"] = abs(res["bf16"]["fd_vs_ref"] - res["fp32"]["fd_vs_ref"])
    res["max_abs_feature_diff"] = float(np.abs(feats["bf16"] - feats["fp32"]).max())
    ok = [k for k in PASS_NAMES if k == "fp32" or res[k]["fd_abs_diff_vs_fp32"] < FD_TOLERANCE]
    best = min(ok, key=lambda k: res[k]["seconds_per_50k"])
    res["best"] = {"precision": best, "seconds_per_50k": res[best]["seconds_per_50k"],
                   "goal": "50K in < 90 s with |dFD| < 0.05", "goal_met": res[best]["seconds_per_50k"] < 90}
    return res


def cpu_tiny(blobs: list[bytes], threads: int) -> dict[str, Any]:
    import tempfile

    from gpic_lab.evaluation.fd import fd_from_features
    from gpic_lab.models.dinov2 import build_tiny_dinov2, load_dinov2

    with tempfile.TemporaryDirectory() as tmp:
        model = load_dinov2(build_tiny_dinov2(os.path.join(tmp, "tiny")), device="cpu")
    f, secs = feature_pass(model, blobs, 64, threads)
    half = len(f) // 2
    return {"label": "tiny random DINOv2 (32-d) on CPU: pipeline check, not a ViT-L/14 number",
            "images_per_s": len(f) / secs, "n": len(f), "fd_half_vs_half": fd_from_features(f[:half], f[half:])["fd"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    threads = args.threads or min(16, os.cpu_count() or 1)
    n = args.n or (256 if args.quick else 2000)
    pool_n = args.pool or (64 if args.quick else 500)
    print(f"bench eval: generating {pool_n} PNGs", file=sys.stderr)
    pool_blobs = make_pool(pool_n, threads)
    blobs = [pool_blobs[i % pool_n] for i in range(n)]
    pre = preprocessing(blobs, threads)
    print(f"bench eval: preprocessing ours {pre['ours_images_per_s']:.0f}/s vs naive "
          f"{pre['naive_images_per_s']:.0f}/s", file=sys.stderr)
    result: dict[str, Any] = {
        "name": "eval", "unit": f"images/s (CPU decode + protocol preprocessing, {threads} threads each side)",
        "ours": pre["ours_images_per_s"], "baseline": pre["naive_images_per_s"],
        "ratio": pre["ours_images_per_s"] / pre["naive_images_per_s"], "preprocessing": pre,
        "ratio_vs_single_loop": pre["ours_images_per_s"] / pre["single_loop_images_per_s"],
        "cpu_count": os.cpu_count(), "torch": torch.__version__}
    if torch.cuda.is_available():
        result["gpu_feature_pass"] = gpu(pool_blobs, min(args.gpu_n, 2048) if args.quick else args.gpu_n,
                                         args.batch_size, threads)
    else:
        result["gpu_feature_pass"] = "not measured: no CUDA"
        result["cpu_tiny_model"] = cpu_tiny(pool_blobs[: min(pool_n, 256)], threads)  # distinct images only
    from gpic_lab.benches.record import gate

    problems = [None if pre["identical_tensors"] else "ours and the baseline give different tensors"]
    gpu_pass = result["gpu_feature_pass"]
    if isinstance(gpu_pass, dict) and not gpu_pass["normalize_identical_on_gpu"]:
        problems.append("the GPU normalisation differs from the CPU reference")
    return gate(result, problems)
