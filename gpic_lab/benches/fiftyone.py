"""`gpic-lab bench fiftyone [--quick] [--samples N] [--no-app]`: FiftyOne ingest and App timings.

Ingest: the same prepared rows (media already in the cache) go into fresh datasets, once through `fo_bridge`'s
declared schema + one `insert_many` per 1000 FiftyOne-shaped documents (ours), once through FiftyOne's own batched
`add_samples` (the baseline: what a FiftyOne user writes) and once through a per-sample `add_sample` loop (reported
as ``add_sample_loop``); ratio = ours/baseline samples/s (goal >= 10x). All three must hold the same keys, captions
and splits, else the bench exits 1 with ratio null. Also reported: end-to-end
`load_dataset` samples/s from shards (index, read, materialise, add) and a no-op refresh. App: seconds from
`launch_app` to HTTP 200, and seconds until headless Chromium's DOM shows the grid's sample count; the screenshot
goes to figures/20_explore_fiftyone/app_screenshot.png. Runs against a private bundled mongod in a temp dir.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 10.0  # ours >= 10x FiftyOne's batched add_samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=None, help="rows to ingest (default 5000; --quick 1000)")
    parser.add_argument("--no-app", action="store_true", help="skip the App/Chromium timing")
    parser.add_argument("--port", type=int, default=None, help="App port (default: a free one)")


def _shards(out: Path, n: int, per_shard: int = 500) -> list[str]:
    """Small real JPEGs (96x72, seeded noise) in the exact GPIC layout."""
    import numpy as np
    from PIL import Image

    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    rng = np.random.default_rng(0)
    paths = []
    for s in range(0, n, per_shard):
        samples = []
        for i in range(s, min(n, s + per_shard)):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(buf, "JPEG", quality=80)
            data = buf.getvalue()
            key = hashlib.sha256(data).hexdigest()
            meta = new_record(key, 96, 72, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                              f"Photo {i} by Bench via Flickr", "2026-01-01T00:00:00Z", "short",
                              f"A noisy synthetic test picture number {i}.", ["nano", "lite", "full"])
            samples.append((key, meta, data, "jpg"))
        path = out / f"gpic_train_{s // per_shard:05d}.tar"
        write_shard(path, samples)
        paths.append(str(path))
    return paths


def _ingest(shards: list[str], cache: Path) -> dict[str, Any]:
    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo.records import Selection, StageDecisions, build_row, materialise, select

    index, chosen = select(shards, Selection())
    decisions = StageDecisions()
    rows = [build_row(index.get(s.key), materialise(index.get(s.key), cache), decisions) for s in chosen]
    fields = fo_bridge._schema_for(rows, decisions)
    loop = fo_bridge.open_dataset("bench_loop", overwrite=True)
    t0 = time.perf_counter()
    fo_bridge.add_sample_loop(loop, rows)
    t_loop = time.perf_counter() - t0
    ours = fo_bridge.open_dataset("bench_bulk", overwrite=True)
    t0 = time.perf_counter()
    fo_bridge.declare_schema(ours, fields)
    fo_bridge._add_rows(ours, rows, fo_bridge.BATCH)
    t_ours = time.perf_counter() - t0
    base = fo_bridge.open_dataset("bench_fo_batched", overwrite=True)
    t0 = time.perf_counter()
    fo_bridge.add_samples_batched(base, rows)  # what a FiftyOne user writes: batched add_samples, schema inferred
    t_base = time.perf_counter() - t0
    problems = [f"{name} holds {len(ds)} of {len(rows)} rows" for name, ds in (("ours", ours), ("add_samples", base),
                                                                               ("the add_sample loop", loop))
                if len(ds) != len(rows)]
    reference = _values(base)
    problems += [f"{name}'s keys, captions or splits differ from add_samples'" for name, ds in
                 (("ours", ours), ("the add_sample loop", loop)) if _values(ds) != reference]
    t0 = time.perf_counter()
    e2e = fo_bridge.load_dataset(shards, "bench_e2e", overwrite=True, cache_dir=cache)
    t_e2e = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = fo_bridge.load_dataset(shards, "bench_e2e", cache_dir=cache)
    t_refresh = time.perf_counter() - t0
    n = len(rows)
    return {"samples": n, "ours": round(n / t_ours, 1), "baseline": round(n / t_base, 1),
            "ratio": round(t_base / t_ours, 2), "goal": f"ratio >= {GOAL}", "goal_met": t_base / t_ours >= GOAL,
            "add_sample_loop": {"samples_per_s": round(n / t_loop, 1), "ratio": round(t_loop / t_ours, 2)},
            "same_fields": not problems, "problems": problems, "end_to_end_load_samples_per_s": round(n / t_e2e, 1),
            "refresh_samples_per_s": round(n / t_refresh, 1), "refresh_duplicates": len(again) - len(e2e.distinct("key"))}


def _values(dataset: Any) -> list[tuple[Any, ...]]:
    """(key, caption, split) of every sample, by key."""
    return sorted(zip(dataset.values("key"), dataset.values("caption"), dataset.values("split"), strict=True))


def _app(port: int | None, sample_dir: Path) -> dict[str, Any]:
    import re

    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo import browser as fo_browser
    from gpic_lab.fo.services import free_port
    from gpic_lab.paths import figures_root

    if fo_browser.chromium() is None:
        return {"app": "skipped: chromium not installed"}
    name = "gpic_sample_bench"
    ds = fo_bridge.load_dataset([sample_dir / d for d in ("train", "val", "test")], name, overwrite=True)
    n = len(ds)
    t0 = time.perf_counter()
    with fo_bridge.launch_app(name, port=port or free_port()) as app:
        t_http = time.perf_counter() - t0
        t_grid, budget = None, 4000
        while t_grid is None and budget <= 32000:
            t1 = time.perf_counter()
            text = fo_browser.visible_text(fo_browser.dump_dom(app.url, budget_ms=budget))
            if re.search(rf"\b{n} samples\b", text):
                t_grid = time.perf_counter() - t1
            budget *= 2
        shot, t_shot = fo_browser.screenshot(app.url, figures_root() / "20_explore_fiftyone" / "app_screenshot.png")
    print(f"App screenshot: {shot}", file=sys.stderr)
    return {"app_launch_to_http_s": round(t_http, 1), "app_first_grid_s": None if t_grid is None else round(t_grid, 1),
            "app_grid_virtual_budget_ms": budget // 2, "app_screenshot_s": round(t_shot, 1), "app_screenshot": str(shot)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if "fiftyone" in sys.modules:
        raise RuntimeError("bench fiftyone must run in a fresh process (fiftyone already imported)")
    from gpic_lab.fo.services import private_mongod
    from gpic_lab.paths import sample_dir

    n = args.samples or (1000 if args.quick else 5000)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-fo-") as tmp:
        root = Path(tmp)
        print(f"generating {n} samples; starting a private mongod ...", file=sys.stderr)
        shards = _shards(root / "shards", n)
        with private_mongod(root / "db") as uri:
            os.environ.update(FIFTYONE_DATABASE_URI=uri, FIFTYONE_CONFIG_DIR=str(root / "config"),
                              FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_SHOW_PROGRESS_BARS="false")
            result = _ingest(shards, root / "media")
            print(f"ingest: ours {result['ours']} vs add_samples {result['baseline']} samples/s", file=sys.stderr)
            if not args.no_app:
                result.update(_app(args.port, sample_dir()))
    from gpic_lab.benches.record import gate

    return gate({"name": "fiftyone", "unit": "samples/s (FiftyOne ingest, prepared rows)", **result},
                result["problems"])
