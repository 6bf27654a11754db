"""Fan-out batch runs: one `gpic-lab run` per range of a str parameter (``shard_range=0:8000:100``: the notebooks'
``shard_range`` takes "START:STOP" over the sorted shard list of their path parameter), at most one run per GPU at a
time (CUDA_VISIBLE_DEVICES) or --jobs concurrent runs on CPU, each with its own run dir, run.log and DONE; a rerun
launches only the ranges without DONE; `collect` merges the ranges' metrics.json into one table."""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.fsio import write_parquet_atomic
from gpic_lab.paths import runs_root
from gpic_lab.runs.params import resolve
from gpic_lab.runs.runner import RunResult, run_notebook


def parse_spec(spec: str) -> tuple[str, list[tuple[int, int]]]:
    """'shard_range=0:800:100' -> ('shard_range', [(0, 100), (100, 200), ...])."""
    try:
        name, rng = spec.split("=", 1)
        start, stop, step = (int(x) for x in rng.split(":"))
    except ValueError:
        raise UsageError(f"--fan-out expects NAME=START:STOP:STEP, got {spec!r}") from None
    if step <= 0 or stop <= start:
        raise UsageError(f"--fan-out {spec!r}: need STEP > 0 and STOP > START")
    return name, [(s, min(s + step, stop)) for s in range(start, stop, step)]


def fanout_dir(nb: str | Path, base: dict[str, Any], spec: str) -> Path:
    """papermill_runs/<stem>/fanout-<hash of base parameters and spec>/."""
    digest = hashlib.sha256(json.dumps([base, spec], sort_keys=True, default=str).encode()).hexdigest()[:10]
    return runs_root() / Path(nb).stem / f"fanout-{digest}"


def fan_out(nb: str | Path, overrides: dict[str, Any], spec: str, gpus: list[str] | None = None, jobs: int = 1,
            force: bool = False, execution_timeout: float | None = None) -> list[RunResult]:
    """Run every range (validated first); returns one RunResult per range, in range order."""
    name, ranges = parse_spec(spec)
    base = resolve(nb, {**overrides, name: f"{ranges[0][0]}:{ranges[0][1]}"})  # checks NAME and the rest up front
    if not isinstance(base[name], str):
        raise UsageError(f"--fan-out parameter {name!r} must be a str parameter")
    root = fanout_dir(nb, {k: v for k, v in base.items() if k != name}, spec)
    slots: queue.Queue[str | None] = queue.Queue()
    for slot in (gpus or [None] * max(1, jobs)):
        slots.put(slot)
    state = {"done": 0, "running": 0, "failed": 0, "skipped": 0}
    lock = threading.Lock()

    def one(r: tuple[int, int]) -> RunResult:
        slot = slots.get()
        with lock:
            state["running"] += 1
            _summary(state, len(ranges))
        status = "failed"
        try:
            env = {"CUDA_VISIBLE_DEVICES": slot} if slot is not None else {}
            result = run_notebook(nb, {**overrides, name: f"{r[0]}:{r[1]}"}, force=force, env=env, quiet=True,
                                  run_id=f"{root.name}/{r[0]:06d}-{r[1]:06d}", execution_timeout=execution_timeout)
            status = result.status
            return result
        finally:
            with lock:  # counted here, before the slot is reused, so `running` never exceeds the slots
                state["running"] -= 1
                state[status] += 1
                _summary(state, len(ranges))
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=len(gpus) if gpus else max(1, jobs)) as pool:
        return [f.result() for f in [pool.submit(one, r) for r in ranges]]


def _summary(state: dict[str, int], total: int) -> None:
    """The live done/running/failed line: redrawn on a terminal, one timestamped line per change elsewhere."""
    import time

    text = (f"fan-out: {state['done']} done, {state['skipped']} skipped, {state['running']} running, "
            f"{state['failed']} failed / {total}")
    if sys.stderr.isatty():
        print(f"\r{text}", end="", file=sys.stderr, flush=True)
    else:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def collect(results_root: Path) -> Any:
    """Merge metrics.json of every range run under a fan-out dir into one table (also written as metrics.parquet)."""

    runs = sorted(p for p in results_root.iterdir() if p.is_dir()) if results_root.is_dir() else []
    if not runs:
        raise UsageError(f"no fan-out runs under {results_root} yet (run without --collect first)")
    rows = []
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
        rows.append({"range": run.name, "done": (run / "DONE").exists(), **metrics})
    table = _flat(rows)
    write_parquet_atomic(results_root / "metrics.parquet", table)
    table.to_csv(results_root / "metrics.csv", index=False)
    return table


def _flat(rows: list[dict[str, Any]]) -> Any:
    """One row per range: nested metrics as dotted columns (``stages.quality.dropped``), and what is still not a
    scalar (lists, empty dicts) as JSON text, and a column whose ranges recorded different types as text, so that
    any metrics a notebook records fit one Parquet table."""
    import pandas as pd

    table = pd.json_normalize(rows)
    for column in table.columns:
        values = [v for v in table[column] if not (isinstance(v, float) and v != v) and v is not None]
        kinds = {type(v) for v in values}
        if kinds & {dict, list, tuple} or (len(kinds) > 1 and not kinds <= {int, float}):
            table[column] = [json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else
                             None if v is None or (isinstance(v, float) and v != v) else str(v)
                             for v in table[column]]
    return table


def fan_out_command(nb: str, overrides: dict[str, Any], spec: str, gpus: str | None, jobs: int, force: bool,
                    only_collect: bool, execution_timeout: float | None = None) -> int:
    """CLI body of `gpic-lab run --fan-out`."""
    name, ranges = parse_spec(spec)
    root = fanout_dir(nb, {k: v for k, v in resolve(nb, {**overrides, name: "0:0"}).items() if k != name}, spec)
    if not only_collect:
        gpu_ids = [g.strip() for g in (gpus or "").split(",") if g.strip()] or None  # "0, 1" -> ["0", "1"]
        results = fan_out(nb, overrides, spec, gpu_ids, jobs, force, execution_timeout)
        print(file=sys.stderr)
        for r in results:
            if r.status == "failed":
                print(f"failed: {r.run_dir} ({r.message}; log: {r.run_dir / 'run.log'})", file=sys.stderr)
    table = collect(root)
    print(table.to_string(index=False))
    print(f"metrics of {len(table)} ranges -> {root / 'metrics.parquet'}", file=sys.stderr)
    return 0 if bool(table["done"].all()) else 1
