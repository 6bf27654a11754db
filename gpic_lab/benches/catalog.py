"""`gpic-lab bench catalog [--quick] [--shards N] [--per-shard N]`: the metadata scan behind `gpic-lab catalog`
vs a plain `tarfile` + `json` loop, on the same generated GPIC-sized shards (~12.5k samples of ~120 KB each),
in this process, page cache warm (shard by shard), rates in samples per CPU-second (per core).

Both sides run under the same garbage-collector state: the headline with the collector on (the interpreter's
default, what a user's loop gets), a second figure with it off for both (the baseline's best case); before each
timed call the bench's own leftovers are collected and frozen. Our scan sets no collector state of its own.
Correctness: both sides must give the same rows (values, types, order), else the bench exits 1 with ratio null.
Also reported: traced memory peak of `write_catalog` for 1 shard vs all shards (flat in the number of shards)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

FIELDS = ("key", "license", "caption_type", "caption", "img_width", "img_height")
GOAL = 5.0  # ours >= 5x the plain loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=int, default=None, help="shards to generate (default 3; --quick 2)")
    parser.add_argument("--per-shard", type=int, default=None, help="samples per shard (default 12500; --quick 1500)")
    parser.add_argument("--image-kb", type=int, default=120, help="image member size in KB (default 120)")
    parser.add_argument("--rounds", type=int, default=None, help="timings per side, shard and collector state; the "
                                                                 "best is kept (default 3)")
    parser.add_argument("--dir", default=None, help="where to generate the shards (default: /dev/shm when it has "
                                                    "room, so the page cache is warm by construction; else a temp dir)")


def bench_dir(wanted: str | None, need_bytes: int) -> tuple[str | None, str]:
    """The directory for generated shards and a description of the storage (tmpfs keeps the data in memory:
    page cache warm by construction, which a VM that reclaims its page cache would not otherwise give)."""
    import shutil

    if wanted:
        return wanted, f"user dir {wanted}"
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * need_bytes:
        return shm, "tmpfs /dev/shm (data in memory)"
    return None, "temp dir on disk (page cache may be cold: this VM reclaims it)"


def generate(out: Path, shards: int, per_shard: int, image_kb: int) -> list[str]:
    """Shards in the exact GPIC layout whose image members are JPEG-headed random bytes of ~image_kb KB."""
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    rng_bytes = os.urandom(image_kb * 1024 + 4096)
    paths = []
    for s in range(shards):
        def entries(s: int = s) -> Any:
            for i in range(per_shard):
                off = (i * 7919) % 4096
                image = b"\xff\xd8\xff\xe0" + rng_bytes[off:off + image_kb * 1024]
                key = hashlib.sha256(f"{s}:{i}".encode()).hexdigest()
                yield key, new_record(key, 587, 479, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                                      f"Photo {i} by someone via Flickr", "2026-01-01T00:00:00Z",
                                      ("tag", "short", "medium", "long")[i % 4], f"A caption for image {i}.",
                                      ["nano", "lite", "full"]), image, "jpg"
        path = out / f"gpic_train_{s:05d}.tar"
        write_shard(path, entries())
        paths.append(str(path))
    return paths


def plain_loop(paths: list[str]) -> list[dict[str, Any]]:
    """The baseline: tarfile iteration, json.load of every .json member."""
    rows = []
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    meta = json.load(tar.extractfile(member))
                    rows.append({k: meta[k] for k in FIELDS})
    return rows


def ours(paths: list[str]) -> list[Any]:
    """Our scan; its natural output is one Arrow table per shard (rows are compared outside the timing)."""
    from gpic_lab.shards.catalog import scan_shard

    tables = []
    for path in paths:
        table, problems = scan_shard(path)
        if problems:
            raise RuntimeError(f"unexpected problems: {problems[:3]}")
        tables.append(table)
    return tables


def _rows(tables: list[Any]) -> list[dict[str, Any]]:
    return [row for table in tables for row in table.select(list(FIELDS)).to_pylist()]


def _digest(rows: list[dict[str, Any]]) -> str:
    """sha256 of the rows in order (same values, types and field order give the same digest)."""
    import hashlib

    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _timed(fn: Any, paths: list[str], collector: bool) -> tuple[float, Any]:
    """CPU seconds of this process for fn(paths) with the cyclic GC on or off. Objects alive before the call are
    collected and frozen first, so neither side pays for collections over the bench's own leftovers."""
    import gc

    gc.collect()
    gc.freeze()
    if not collector:
        gc.disable()
    try:
        start = time.process_time()
        out = fn(paths)
        return time.process_time() - start, out
    finally:
        gc.enable()


def _compare(shard: str, rounds: int, collector: bool) -> tuple[float, float, int, bool]:
    """Best-of-`rounds` CPU seconds of the baseline and of ours on one shard (interleaved), its sample count and
    whether both gave the same rows. Each side's output is reduced to a digest and dropped before the other side
    runs, so neither is timed with the other's rows alive in the heap."""
    best_base = best_ours = float("inf")
    same, count = True, 0
    for _ in range(rounds):
        t, rows = _timed(plain_loop, [shard], collector)
        best_base, digest_base, count = min(best_base, t), _digest(rows), len(rows)
        del rows
        t, tables = _timed(ours, [shard], collector)
        best_ours, digest_ours = min(best_ours, t), _digest(_rows(tables))
        del tables
        same = same and digest_base == digest_ours
    return best_base, best_ours, count, same


def _catalog_peak_mb(paths: list[str], out: Path) -> float:
    from gpic_lab.shards.catalog import write_catalog

    tracemalloc.start()
    write_catalog(paths, out, workers=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / 2**20, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpic_lab.benches.record import gate

    shards = args.shards or (2 if args.quick else 3)
    rounds = args.rounds or 3
    per_shard = args.per_shard or (1500 if args.quick else 12500)
    where, storage = bench_dir(args.dir, shards * per_shard * (args.image_kb + 2) * 1024)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-catalog-", dir=where) as tmp:
        print(f"generating {shards} shards × {per_shard} samples × {args.image_kb} KB ...", file=sys.stderr)
        paths = generate(Path(tmp), shards, per_shard, args.image_kb)
        # Shard by shard, page cache warm (this VM reclaims cold page cache, so 4.5 GB would not stay cached):
        # warm one shard, then time both sides on it, interleaved, best of the rounds, under each collector state.
        totals = {state: [0.0, 0.0] for state in ("gc_on", "gc_off")}
        n, same = 0, True
        ours(paths[:1])
        for shard in paths:
            plain_loop([shard])
            for state in totals:
                t_base, t_ours, count, ok = _compare(shard, rounds, state == "gc_on")
                totals[state][0] += t_base
                totals[state][1] += t_ours
                same = same and ok
            n += count
        peak_one = _catalog_peak_mb(paths[:1], Path(tmp) / "one.parquet")
        peak_all = _catalog_peak_mb(paths, Path(tmp) / "all.parquet")
    (base_on, ours_on), (base_off, ours_off) = totals["gc_on"], totals["gc_off"]
    ratio = base_on / ours_on
    result = {"name": "catalog", "unit": "samples per CPU-second (metadata scan, one process)",
              "ours": round(n / ours_on, 1), "baseline": round(n / base_on, 1), "ratio": round(ratio, 2),
              "gc": "on for both sides (the interpreter's default)",
              "gc_off_both": {"ours": round(n / ours_off, 1), "baseline": round(n / base_off, 1),
                              "ratio": round(base_off / ours_off, 2)},
              "goal": f"ratio >= {GOAL} (collector on for both sides)", "rounds": rounds,
              "goal_met": ratio >= GOAL, "samples": n, "shards": shards,
              "same_rows": same, "storage": storage, "catalog_peak_traced_mb_1_shard": peak_one,
              f"catalog_peak_traced_mb_{shards}_shards": peak_all}
    return gate(result, [None if same else "the baseline and our scan gave different rows"])
