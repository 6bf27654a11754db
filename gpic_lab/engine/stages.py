"""The stage contract: run any per-shard stage over shards, resumably, on any engine.

A stage function takes one shard's samples and returns one ``gpic_lab.engine.records.Decision`` per sample:
``fn(samples: list[Sample], params: dict) -> list[Decision]``. ``run_stage`` does everything else:

    OUT/shards/<shard-stem>.parquet   one shard's decisions (written atomically)
    OUT/done/<shard-stem>.done        completion marker (JSON: samples, kept, problems, seconds), written last
    OUT/decisions.parquet             one row per key, in shard order (columns: gpic_lab.engine.records); a key seen
                                      twice keeps its dropped row if any occurrence was dropped
    OUT/counts.csv                    counts per reason x license_family x source ("kept" for kept samples)
    OUT/reasons.csv                   counts and shares per reason (the printed summary)
    OUT/summary.json                  stage, params, engine, shards done/skipped, samples, counts per reason

A shard with a marker is never recomputed, so an interrupted run resumes where it stopped. A member that cannot
be read becomes a dropped row with reason ``unreadable:<code>`` (codes of ``gpic-lab validate``); nothing is
skipped silently. The stage name and params are fixed per output directory: rerunning with other params is an
error (use a new ``--out`` or ``force=True``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.errors import GpicError, UsageError

REGISTRY: dict[str, str] = {
    "license": "gpic_lab.filters.license:license_stage",
    "quality": "gpic_lab.filters.quality:quality_stage",
    "vlm-judge": "gpic_lab.filters.vlm_judge:judge_stage",
    "safety-cpu": "gpic_lab.filters.safety:safety_stage",
    "caption-qc": "gpic_lab.caption.qc:qc_stage",
    "schema": "gpic_lab.engine.stages:schema_stage",
}
GPU_STAGES = frozenset({"vlm-judge"})
JSON_ONLY_STAGES = frozenset({"license", "schema"})  # these never look at pixels: image bytes are not read


def resolve(name: str) -> Callable[[list[Any], dict[str, Any]], list[Any]]:
    """The stage function for a registry name or a ``module:function`` spec."""
    spec = REGISTRY.get(name, name)
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise UsageError(f"unknown stage {name!r}; known stages: {', '.join(sorted(REGISTRY))} "
                         "(or give module:function)")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"stage {name!r}: cannot load {spec}: {exc}") from None


def shard_stem(path: str) -> str:
    """The file name of a shard without .tar (markers and per-shard files are named by it)."""
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".tar") else name


def unique_shards(paths: Iterable[str | Any]) -> list[str]:
    """``shards.list_shards(paths)`` with a shard named twice (as a file and inside a directory) listed once."""
    import os

    from gpic_lab.shards.reader import list_shards

    seen: dict[str, str] = {}
    for shard in list_shards(paths):
        seen.setdefault(shard if "://" in shard else os.path.realpath(shard), shard)
    return list(seen.values())


def params_digest(name: str, params: Mapping[str, Any]) -> str:
    """A stable hash of the stage name and its params (recorded in markers and summary)."""
    text = json.dumps({"stage": name, "params": dict(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@declare(ParamSpec("require_caption", "bool", True, "require caption and caption_type (false for collected, "
                                                   "not yet captioned shards)"))
def schema_stage(samples: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
    """Stage ``schema``: drop records whose JSON breaks GPIC's schema (reason ``schema-invalid``, extra ``detail``).

    params: require_caption (default True; False for collected, not yet captioned shards).
    """
    from gpic_lab.engine.records import Decision
    from gpic_lab.shards.schema import check_meta

    require = bool((params or {}).get("require_caption", True))
    out = []
    for s in samples:
        problems = check_meta(s.meta, require_caption=require)
        out.append(Decision(s.key, not problems, "schema-invalid" if problems else None,
                            extra={"detail": "; ".join(problems) if problems else None}))
    return out


def _problem_rows(problems: list[Any], stage: str) -> list[dict[str, Any]]:
    return [{"key": p.key or f"{shard_stem(p.shard)}/{p.member}", "shard": p.shard, "stage": stage, "keep": False,
             "reason": f"unreadable:{p.code}", "license": "", "license_family": "unknown", "source": "other",
             "detail": p.line()} for p in problems]


def process_shard(task: tuple[str, str, str, dict[str, Any], str]) -> dict[str, Any]:
    """Run one stage on one shard and write its decisions and marker (the engines' task function)."""
    import pandas as pd

    from gpic_lab.engine.records import decisions_frame
    from gpic_lab.fsio import write_json_atomic, write_parquet_atomic
    from gpic_lab.shards.reader import Problem, iter_entries

    name, shard, out_dir, params, digest = task
    stem, out = shard_stem(shard), Path(out_dir)
    done = _finished_marker(out / "done" / f"{stem}.done", name, digest)
    if done is not None:  # Dask may rerun a task whose result died with a worker: never redo a finished shard
        return done
    start = time.perf_counter()
    entries = list(iter_entries(shard, images=name not in JSON_ONLY_STAGES))
    samples = [e for e in entries if not isinstance(e, Problem)]
    problems = [e for e in entries if isinstance(e, Problem)]
    decisions = resolve(name)(samples, dict(params)) if samples else []
    _check_one_per_sample(shard, samples, decisions)
    frame = decisions_frame(decisions, name, {s.key: s.meta for s in samples}, {s.key: s.shard for s in samples})
    if problems:
        frame = pd.concat([frame, pd.DataFrame(_problem_rows(problems, name))], ignore_index=True)
    write_parquet_atomic(out / "shards" / f"{stem}.parquet", frame)
    kept = int(frame["keep"].sum()) if len(frame) else 0
    marker = {"shard": shard, "stage": name, "params": digest, "samples": len(samples), "problems": len(problems),
              "kept": kept, "dropped": len(frame) - kept, "seconds": round(time.perf_counter() - start, 3)}
    write_json_atomic(out / "done" / f"{stem}.done", marker)
    return marker


def _finished_marker(marker: Path, name: str, digest: str) -> dict[str, Any] | None:
    """The marker's content when this shard was already finished with this stage and params, else None."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(recorded, dict):
        return None
    return recorded if recorded.get("stage") == name and recorded.get("params") == digest else None


def read_marker(marker: Path) -> dict[str, Any] | None:
    """A done-marker's content (None when there is none); UsageError naming it when it is not a marker file."""
    if not marker.exists() and not marker.is_symlink():
        return None
    try:
        recorded = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        why = "a directory" if marker.is_dir() else f"unreadable ({type(exc).__name__})"
        recorded = why
    if not isinstance(recorded, dict):
        why = recorded if isinstance(recorded, str) else f"JSON {type(recorded).__name__}, not a marker"
        raise UsageError(f"{marker}: not a done-marker ({why}); remove it to recompute that shard, or use a new --out")
    return recorded


def _check_one_per_sample(shard: str, samples: list[Any], decisions: list[Any]) -> None:
    keys = [s.key for s in samples]
    got = [d.key for d in decisions]
    if sorted(got) != sorted(keys):
        missing = sorted(set(keys) - set(got))[:3]
        extra = sorted(set(got) - set(keys))[:3]
        raise GpicError(f"{shard}: stage returned {len(got)} decisions for {len(keys)} samples "
                        f"(missing {missing}, unexpected {extra}, or duplicates)")


def _pending(name: str, shards: list[str], out: Path, digest: str, force: bool) -> list[str]:
    todo = []
    for shard in shards:
        marker = out / "done" / f"{shard_stem(shard)}.done"
        recorded = read_marker(marker)  # UsageError for a corrupt marker or a directory, with or without --force
        if recorded is not None and not force:
            if recorded.get("params") != digest or recorded.get("stage") != name:
                raise UsageError(f"{out}: holds results of stage {recorded.get('stage')!r} with other params "
                                 f"(marker {marker.name}); use a new --out or --force")
            continue
        todo.append(shard)
    return todo


def run_stage(name: str, paths: Iterable[str], out_dir: str | Path, params: Mapping[str, Any] | None = None,
              engine: str = "local", scheduler: str | None = None, workers: int | None = None,
              force: bool = False, progress: bool | str = True,
              merge_with: Iterable[str] | None = None) -> dict[str, Any]:
    """Run stage ``name`` over every shard under ``paths`` into ``out_dir``; return the summary.

    Args:
        name: a REGISTRY name (``license``, ``quality``, ...) or ``module:function``.
        paths: shards or directories of shards.
        out_dir: the stage's output directory (created; resumable).
        params: passed to the stage function; fixed per output directory.
        engine / scheduler / workers: see ``gpic_lab.engine.backends.map_tasks``.
        force: recompute shards that have a marker.
        progress: a bar over shards with rate, ETA and running kept/dropped totals on stderr
            (``auto``/``on``/``off`` or a bool, see ``gpic_lab.progress``).
        merge_with: when ``paths`` is one worker's part (``--shard-range``), the whole shard list: the decisions
            table then merges every shard of it that is finished in ``out_dir`` (by any worker), so the last worker
            to finish, or a rerun without a range, leaves the table of all shards.
    """
    from gpic_lab.engine.backends import map_tasks
    from gpic_lab.engine.params import check, specs_of

    fn = resolve(name)  # fail fast on an unknown stage or bad params, before any shard is read or worker starts
    params = check(name, specs_of(fn), dict(params or {}))
    shards = unique_shards(paths)
    stems = [shard_stem(s) for s in shards]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise UsageError(f"two shards share the file name {dup}.tar; markers are per file name")
    out, digest = Path(out_dir), params_digest(name, params)
    todo = _pending(name, shards, out, digest, force)
    if force:  # a task skips a shard whose marker exists: forget the markers of the shards to recompute
        for shard in todo:
            (out / "done" / f"{shard_stem(shard)}.done").unlink(missing_ok=True)
    if workers is None and scheduler is None and name in GPU_STAGES:
        workers = 1  # one model on one GPU (every local worker would load its own on cuda:0); a Dask cluster for more
    tasks = [(name, shard, str(out), params, digest) for shard in todo]
    from gpic_lab.progress import log

    log(__name__).info("stage %s: %d shard(s), %d to compute -> %s", name, len(shards), len(todo), out)
    started = time.perf_counter()
    bar = _bar(len(shards), len(shards) - len(todo), name, progress)
    totals = {"kept": 0, "dropped": 0}
    for _, marker in map_tasks(process_shard, tasks, engine, scheduler, workers, gpu=name in GPU_STAGES,
                               label=lambda t: t[1]):
        totals = {k: totals[k] + int(marker[k]) for k in totals}
        bar.update(1)
        bar.set_postfix(totals)
    bar.close()
    run = {"engine": engine, "scheduler": scheduler, "workers": workers, "computed": len(todo),
           "skipped": len(shards) - len(todo), "seconds": round(time.perf_counter() - started, 3)}
    if merge_with is not None:
        done, whole = {shard_stem(s) for s in shards}, unique_shards(merge_with)
        shards = [s for s in whole if shard_stem(s) in done
                  or _finished_marker(out / "done" / f"{shard_stem(s)}.done", name, digest) is not None]
        run["shards_in_list"] = len(whole)
    summary = merge(name, shards, out, params, digest, run)
    log(__name__).info("stage %s: %d kept, %d dropped in %d shard(s) (%.1f s)", name, summary["kept"],
                       summary["dropped"], summary["shards"], run["seconds"])
    return summary


def _bar(total: int, initial: int, name: str, mode: bool | str) -> Any:
    from gpic_lab.progress import bar

    return bar(total, f"stage {name}", "shard", mode, initial=initial)


def merge(name: str, shards: list[str], out: Path, params: Mapping[str, Any], digest: str,
          run: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the per-shard decisions into decisions.parquet, counts.csv, reasons.csv and summary.json, out of core
    (``gpic_lab.engine.merge``: memory bounded by one shard table and one key bucket)."""
    from gpic_lab.engine.merge import counts_frame, merge_files, reasons_frame
    from gpic_lab.fsio import atomic_path, write_json_atomic

    files = [_shard_table(out, s) for s in shards]
    merged = merge_files(files, out / "decisions.parquet")
    with atomic_path(out / "counts.csv") as tmp:
        counts_frame(merged["counts"]).to_csv(tmp, index=False)
    reasons = reasons_frame(merged["counts"], merged["samples"])
    with atomic_path(out / "reasons.csv") as tmp:
        reasons.to_csv(tmp, index=False)
    summary = {"stage": name, "params": dict(params), "params_digest": digest, "shards": len(shards), **run,
               "samples": merged["samples"], "duplicate_keys": merged["duplicate_keys"], "kept": merged["kept"],
               "dropped": merged["samples"] - merged["kept"],
               "reasons": dict(zip(reasons["reason"], reasons["count"].astype(int), strict=True))}
    write_json_atomic(out / "summary.json", summary)
    return summary


def _shard_table(out: Path, shard: str) -> Path:
    """One finished shard's decisions file, its footer checked; GpicError (one line) when the file behind its marker
    is gone or damaged."""
    import pyarrow.parquet as pq

    path = out / "shards" / f"{shard_stem(shard)}.parquet"
    try:
        pq.ParquetFile(path).close()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a missing or damaged file
        raise GpicError(f"{path}: unreadable decisions of a finished shard ({type(exc).__name__}); remove "
                        f"done/{shard_stem(shard)}.done to recompute it, or rerun with --force") from None
    return path


def one_row_per_key(frame: Any, prefer_kept: bool = False) -> tuple[Any, int]:
    """Collapse keys with several rows (a key twice in a shard or in two shards) to one row per key: the first
    dropped row when any occurrence was dropped, else the first row (with ``prefer_kept``: the first kept row, else
    the first row). Returns the frame and how many keys had several rows (reported in summary.json as
    ``duplicate_keys``)."""
    dup_mask = frame["key"].duplicated(keep=False)
    if not dup_mask.any():
        return frame, 0
    order = frame.assign(_kept=frame["keep"].astype(bool), _pos=range(len(frame)))
    first = order.sort_values(["_kept", "_pos"], ascending=[not prefer_kept, True], kind="stable") \
        .drop_duplicates("key", keep="first")
    collapsed = first.sort_values("_pos").drop(columns=["_kept", "_pos"]).reset_index(drop=True)
    return collapsed, int(frame.loc[dup_mask, "key"].nunique())


def reasons_table(frame: Any) -> Any:
    """Counts and shares per reason (``kept`` first), the table ``gpic-lab stage`` prints."""
    reasons = frame["reason"].fillna("kept").astype(str)
    table = reasons.value_counts().rename_axis("reason").rename("count").reset_index()
    table["share"] = (table["count"] / max(len(frame), 1)).round(4)
    table["_dropped"] = table["reason"] != "kept"
    return table.sort_values(["_dropped", "count", "reason"], ascending=[True, False, True]) \
        .drop(columns="_dropped").reset_index(drop=True)
