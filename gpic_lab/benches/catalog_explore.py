"""`gpic-lab bench catalog-explore [--quick] [--rows N]`: notebook 01's tables on a synthetic catalog of N rows
(default 10 M), through polars lazy scans (ours) vs pandas reading the Parquet (baseline); peak memory of each.

The catalog has the layout `gpic-lab catalog` writes (random 64-hex keys, 12,500 rows per shard, GPIC's caption-type
mix and median caption lengths, realistic sizes and licenses), in row groups of 100,000 rows; it is generated once
and kept under the state dir. Each side runs in a fresh process and computes the same tables: license family ×
source, caption-type mix, caption lengths by type, the size table (count, mean, std, min, 5/50/95%, max), samples
per shard and the number of repeated keys. The baseline is what a competent pandas user writes: `pd.read_parquet`
of the needed columns only (Arrow-backed strings), vectorised words count, `groupby`/`crosstab`/`describe`,
`key.duplicated()`. Both sides' tables must agree (counts exactly, floats to 1e-9 relative) or the bench fails.
Flatness: ours runs on a tenth of the rows too; `ours_growth` = peak(N) / peak(N/10) (1.0 is flat).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROW_GROUP = 100_000
PER_SHARD = 12_500
VERSION = 1  # bump when the generator changes (the cached catalog is keyed by it)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=None, help="catalog rows (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--no-baseline", action="store_true", help="measure only ours (e.g. for 100 M rows)")
    parser.add_argument("--dir", default=None, help="where generated catalogs are kept (default: <state>/bench)")


def _captions(rng: Any, per_type: int = 2000) -> dict[str, list[str]]:
    """A pool of captions per type whose word counts follow GPIC's medians (tag 7, short 17, medium 39, long 131)."""
    import numpy as np

    vocab = np.array([f"w{i}" for i in range(3000)])
    medians = {"tag": 7, "short": 17, "medium": 39, "long": 131}
    pool = {}
    for ctype, med in medians.items():
        lengths = rng.normal(med, med * 0.25, per_type).clip(1).astype(int)
        sep = ", " if ctype == "tag" else " "
        pool[ctype] = [sep.join(rng.choice(vocab, n)) + ("" if ctype == "tag" else ".") for n in lengths]
    return pool


def _chunk(rng: Any, start: int, n: int, pool: dict[str, Any]) -> Any:
    import numpy as np
    import pyarrow as pa

    from gpic_lab.shards.catalog import schema

    idx = np.arange(start, start + n)
    blob = os.urandom(32 * n).hex()
    keys = pa.array([blob[i:i + 64] for i in range(0, 64 * n, 64)])
    types = rng.choice(["tag", "short", "medium", "long"], n, p=[0.01, 0.45, 0.45, 0.09])
    pick = rng.integers(0, 2000, n)
    parts = {t: pool[t].take(pa.array(pick[types == t])).to_numpy(zero_copy_only=False) for t in pool}
    column = np.empty(n, dtype=object)
    for t, values in parts.items():
        column[types == t] = values
    captions = pa.array(column, pa.string())
    flickr = rng.random(n) < 0.6
    lic = rng.choice(["CC BY 2.0", "CC0 1.0", "Public Domain Mark 1.0", "No known copyright restrictions"], n,
                     p=[0.5, 0.2, 0.2, 0.1])
    family = np.select([lic == "CC BY 2.0", lic == "CC0 1.0", lic == "Public Domain Mark 1.0"], ["CC-BY", "CC0", "PD"],
                       "NKCR")
    width = rng.integers(256, 4097, n)
    height = np.maximum(64, (width / rng.choice([1.0, 1.333, 1.5, 0.75, 0.5625, 1.777, 2.0, 0.667], n)).astype(int))
    nbytes = rng.lognormal(11.7, 0.5, n).astype(np.int64)
    cols = {"key": keys, "shard": pa.array([f"gpic/train/gpic_train_{i // PER_SHARD:05d}.tar" for i in idx]),
            "license": pa.array(lic), "license_url": pa.array(np.where(flickr, "https://www.flickr.com/", "")),
            "attribution": pa.array([f"Photo {i} by user {i % 977}" for i in idx]),
            "img_width": pa.array(width), "img_height": pa.array(height), "caption_type": pa.array(types),
            "caption": captions, "split": pa.array([["full"]] * n, pa.list_(pa.string())),
            "retrieved_at": pa.array(["2025-06-01T00:00:00Z"] * n), "image_format": pa.array(["jpg"] * n),
            "image_bytes": pa.array(nbytes), "json_offset": pa.array(idx * 2), "json_size": pa.array(np.full(n, 900)),
            "image_offset": pa.array(idx * 3), "image_size": pa.array(nbytes),
            "source": pa.array(np.where(flickr, "flickr", "wikimedia")), "license_family": pa.array(family)}
    return pa.table(cols, schema=schema())


def generate(path: Path, rows: int, seed: int = 0) -> Path:
    """Write (once) a synthetic catalog of ``rows`` rows to ``path``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpic_lab.fsio import atomic_path
    from gpic_lab.shards.catalog import schema

    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    pool = {t: pa.array(v) for t, v in _captions(rng).items()}
    print(f"generating a {rows:,}-row catalog at {path} ...", file=sys.stderr)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema()) as writer:
        for start in range(0, rows, ROW_GROUP):
            writer.write_table(_chunk(rng, start, min(ROW_GROUP, rows - start), pool), row_group_size=ROW_GROUP)
    return path


def ours(path: str) -> dict[str, Any]:
    """Every table through polars lazy scans (notebook 01's cells)."""
    from gpic_lab.shards import buckets, explore_lazy

    lf = explore_lazy.scan(path)
    words = explore_lazy.word_counts(lf)
    return {"license": explore_lazy.license_table(lf), "mix": explore_lazy.caption_mix(lf),
            "lengths": explore_lazy.caption_lengths(lf, words), "sizes": explore_lazy.size_table(lf),
            "shards": explore_lazy.shard_counts(lf), "repeated": buckets.repeated_keys(path)["repeated"]}


def baseline(path: str) -> dict[str, Any]:
    """The same tables with pandas: read the needed columns, then explore's pandas functions."""
    import pandas as pd

    from gpic_lab.shards import explore

    frame = pd.read_parquet(path, columns=["key", "shard", "caption_type", "caption", "img_width", "img_height",
                                           "image_bytes", "source", "license_family"])
    explore.with_derived(frame)
    return {"license": explore.license_table(frame), "mix": explore.caption_mix(frame),
            "lengths": explore.caption_lengths(frame), "sizes": explore.size_table(frame),
            "shards": explore.shard_counts(frame), "repeated": int(frame["key"].duplicated().sum())}


def child(side: str, path: str, out: str) -> None:
    """Run one side in this (fresh) process; write its tables, seconds and peak RSS to ``out`` (JSON)."""
    import resource

    start = time.perf_counter()
    tables = (ours if side == "ours" else baseline)(path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    data = {k: (v.to_json(orient="split") if hasattr(v, "to_json") else v) for k, v in tables.items()}
    Path(out).write_text(json.dumps({"tables": data, "seconds": seconds, "peak_mb": peak}))


def _measure(side: str, path: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{side}-{path.stem}.json"
    code = f"from gpic_lab.benches.catalog_explore import child; child({side!r}, {str(path)!r}, {str(out)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed on {path}: {done.stderr.strip()[-800:]}")
    return json.loads(out.read_text())


def same_tables(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the tables that differ (counts exactly, floats to 1e-9 relative)."""
    import io

    import pandas as pd

    bad = []
    for name in a:
        if name == "repeated":
            bad += [] if a[name] == b[name] else [name]
            continue
        x, y = (pd.read_json(io.StringIO(t[name]), orient="split") for t in (a, b))
        try:
            pd.testing.assert_frame_equal(x, y.loc[x.index, x.columns], check_dtype=False, check_names=False, rtol=1e-9)
        except (AssertionError, KeyError):
            bad.append(name)
    return bad


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from gpic_lab.paths import state_root

    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    where = Path(args.dir) if args.dir else state_root() / "bench"
    where.mkdir(parents=True, exist_ok=True)
    big = generate(where / f"catalog-explore-v{VERSION}-{rows}.parquet", rows)
    small = generate(where / f"catalog-explore-v{VERSION}-{rows // 10}.parquet", rows // 10)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-explore-") as tmp:
        o_big, o_small = _measure("ours", big, Path(tmp)), _measure("ours", small, Path(tmp))
        b_big = b_small = None
        if not args.no_baseline:
            b_big, b_small = _measure("baseline", big, Path(tmp)), _measure("baseline", small, Path(tmp))
    differ = [] if b_big is None else same_tables(o_big["tables"], b_big["tables"]) + \
        [f"{n}@small" for n in same_tables(o_small["tables"], b_small["tables"])]
    result = {"name": "catalog-explore", "unit": f"peak RSS MiB exploring a {rows:,}-row catalog (lower is better; "
                                                 "ratio = baseline / ours)",
              "rows": rows, "ours": round(o_big["peak_mb"], 1), "ours_seconds": round(o_big["seconds"], 1),
              "ours_peak_mb_tenth": round(o_small["peak_mb"], 1),
              "ours_growth": round(o_big["peak_mb"] / o_small["peak_mb"], 2),
              "catalog_mb": round(big.stat().st_size / 2**20, 1), "same_tables": not differ, "differ": differ}
    if b_big is None:
        return {**result, "baseline": None, "ratio": None}
    ratio = None if differ else round(b_big["peak_mb"] / o_big["peak_mb"], 2)
    if differ:
        print(f"catalog-explore: tables differ between ours and the baseline: {differ}", file=sys.stderr)
    return {**result, "baseline": round(b_big["peak_mb"], 1), "ratio": ratio,
            "baseline_seconds": round(b_big["seconds"], 1), "baseline_peak_mb_tenth": round(b_small["peak_mb"], 1),
            "baseline_growth": round(b_big["peak_mb"] / b_small["peak_mb"], 2)}
