"""`gpic-lab bench pack [PATH...] [--samples N] [--shards N]`: packing vs a plain tarfile copy, same run.

Ours: ``gpic_lab.pack.packer.pack`` (plan from JSON headers only, stratified splits, balanced shards, image bytes by pread,
deterministic writer, sha256 manifest + datasheet). Baseline: Python's ``tarfile`` reading every member of the
same source shards and writing them to as many output tars, in order (no plan, no manifest, no hashes).
Both sides are timed best-of-``--repeat`` on a warm page cache.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="source shards (default: synthetic GPIC-sized shards)")
    parser.add_argument("--samples", type=int, default=None, help="synthetic samples (default 2000; --quick 400)")
    parser.add_argument("--shards", type=int, default=8, help="train shards to write (default 8)")
    parser.add_argument("--repeat", type=int, default=None, help="best of N timings per side (default 3; --quick 2)")


def tarfile_copy(shards: list[str], out: Path, n_out: int) -> int:
    """Copy every member of ``shards`` into ``n_out`` tars with plain tarfile, pairs kept together."""
    out.mkdir(parents=True, exist_ok=True)
    writers = [tarfile.open(out / f"copy_{i:05d}.tar", "w") for i in range(n_out)]
    count = 0
    try:
        for shard in shards:
            with tarfile.open(shard) as src:
                for member in src:
                    if not member.isfile():
                        continue
                    data = src.extractfile(member)
                    key = member.name.rsplit(".", 1)[0]
                    writers[hash(key) % n_out].addfile(member, data)
                    count += member.name.endswith(".json")
    finally:
        for w in writers:
            w.close()
    return count


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpic_lab.benches.loader import synthetic_shards
    from gpic_lab.pack.packer import pack
    from gpic_lab.shards.reader import iter_samples, list_shards

    repeat = args.repeat or (2 if args.quick else 3)
    n = args.samples or (400 if args.quick else 2000)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-pack-") as tmp:
        root = Path(tmp)
        shards = list_shards(args.paths) if args.paths else synthetic_shards(root / "src", 4, max(1, n // 4))
        samples = sum(1 for _ in iter_samples(shards, images=False))
        size = sum(Path(s).stat().st_size for s in shards)
        print(f"bench pack: {samples} samples, {size / 2**20:.1f} MiB in {len(shards)} shard(s)", file=sys.stderr)

        def ours() -> None:
            pack(shards, root / "packed", args.shards, 0.01, 0.01, seed=0)

        def base() -> None:
            shutil.rmtree(root / "copy", ignore_errors=True)
            tarfile_copy(shards, root / "copy", args.shards + 2)

        t_base = _best(base, repeat)
        t_ours = _best(ours, repeat)
    ours_rate, base_rate = samples / t_ours, samples / t_base
    print(f"  pack {ours_rate:.0f} samples/s vs tarfile copy {base_rate:.0f} samples/s", file=sys.stderr)
    return {"name": "pack", "unit": "samples/s", "ours": round(ours_rate, 1), "baseline": round(base_rate, 1),
            "ratio": round(ours_rate / base_rate, 3), "samples": samples, "source_mib": round(size / 2**20, 1),
            "mib_per_s": round(size / 2**20 / t_ours, 1), "train_shards": args.shards, "repeat": repeat,
            "ours_includes": "plan + stratified split + deterministic tars + sha256 manifest + datasheet"}
