"""Packaging (GPIC stage 5): apply stage decisions, split train/val/test, shard, tier and write GPIC tars.

Determinism: every ordering comes from sha256(seed, purpose, key), never from input order, file listing order or
time, so the same inputs and seed give byte-identical shards and manifest.

Splits and tiers (GPIC §2.5): val/test are drawn per stratum (source × caption_type) with largest-remainder
quotas, so each split keeps the pool's Flickr/Wikimedia ratio and caption-type mix. Train is dealt round-robin
over N shards in (caption_type, source) order, so every shard gets each caption type and each stratum within ±1
and shard sizes differ by at most one. Nano/Lite/Full are the first 1%/10%/100% of train shards
(``gpic_lab.shards.tiers``, the one tier rule; at least one each). Records' ``split`` list names the tiers that contain the
sample (train shard 0: ["nano", "lite", "full"]); val and test records carry ``split = []`` (the GPIC card does
not document their value; the sample corpus uses the same convention).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.caption.store import caption_files, captions_by_key
from gpic_lab.errors import GpicError, UsageError, exception_line
from gpic_lab.pack import guards, plan_io
from gpic_lab.pack.inputs import check_keys, load_drops
from gpic_lab.shards.tiers import tier_shard_counts, tiers_of_shard

SPLIT_PREFIX = {"train": "gpic_train", "val": "gpic_val", "test": "gpic_test"}
# OUR ASSUMPTION (tuning): below this many local source shards the plan scans them in this process. A parallel scan
# saves ~10 ms per 1,000-record shard and costs ~50 ms per call (Dask round trips, workers still starting): on 4
# shards and 2 workers it was no faster (2 vCPUs, 2026-12-02); GPIC's 8,000 shards are far above it.
PARALLEL_SCAN_SHARDS = 16


@dataclass
class PackInputs:
    """Classified inputs: source shards, decision tables, caption tables."""

    shards: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Which key goes where, plus everything the datasheet counts."""

    shards: dict[str, list[list[str]]]  # split -> shards -> keys (in write order)
    tiers: dict[str, int]  # tier -> number of train shards
    meta: dict[str, dict[str, Any]]
    location: dict[str, Any]  # key -> metadata-only Sample (shard + offsets)
    dropped: list[dict[str, str]]  # one row per (key, stage, reason) drop
    pool: int
    applied_stages: list[str]
    scanned: set[str] = field(default_factory=set)  # keys whose source record is `fastscan.decode_record` of its bytes


def rank(seed: int, purpose: str, key: str) -> str:
    """Deterministic pseudo-random sort key."""
    return hashlib.sha256(f"{seed}:{purpose}:{key}".encode()).hexdigest()


def classify_inputs(paths: Iterable[str | os.PathLike[str]]) -> PackInputs:
    """Sort CLI inputs into shards (tars, dirs of tars, catalogs' shard column) and decision/caption tables."""
    out = PackInputs()
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and (p / "decisions.parquet").is_file():
            out.decisions.append(str(p / "decisions.parquet"))
        elif p.is_dir() and sorted(p.glob("*.captions.parquet")):
            out.captions += [str(x) for x in sorted(p.glob("*.captions.parquet"))]
        elif p.is_dir() or p.suffix == ".tar":
            out.shards.append(str(p))
        elif p.suffix == ".parquet" and p.is_file():
            _classify_parquet(p, out)
        else:
            raise UsageError(f"{raw}: not a shard, shard directory, stage directory or parquet table")
    if not out.shards:
        raise UsageError("no source shards given (pass tar shards, directories of them, or a catalog)")
    return out


def _classify_parquet(p: Path, out: PackInputs) -> None:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(p).names)
    except Exception as exc:  # not a parquet file, truncated footer...
        raise GpicError(f"{p}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc
    if {"stage", "keep", "key"} <= names:
        out.decisions.append(str(p))
    elif {"key", "caption", "caption_type", "prompt_version"} <= names:
        out.captions.append(str(p))
    elif {"key", "shard"} <= names:
        shards = plan_io.catalog_shards(p)  # batch by batch: a 100 M-row catalog lists few shards
        for s in shards:
            cand = Path(s) if Path(s).is_absolute() or Path(s).exists() else p.parent / s
            if not cand.exists():
                raise UsageError(f"{p}: catalog shard {s!r} not found")
            out.shards.append(str(cand))
    else:
        raise UsageError(f"{p}: parquet is neither decisions (key, stage, keep), captions nor a catalog (key, shard)")


def _quotas(strata: dict[tuple[str, str], list[str]], total: int, n: int) -> dict[tuple[str, str], int]:
    """Largest-remainder allocation of n over strata proportional to their sizes."""
    raw = {s: n * len(keys) / total for s, keys in strata.items()}
    quota = {s: int(v) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: (-(raw[s] - quota[s]), s))[: n - sum(quota.values())]:
        quota[s] += 1
    return quota


def _count(n: float, pool: int, what: str) -> int:
    if n < 0:
        raise UsageError(f"--{what} must be >= 0, got {n}")
    if n > 1 and n != int(n):
        raise UsageError(f"--{what} {n}: a count must be a whole number (a fraction must lie in (0, 1))")
    return int(round(n * pool)) if 0 < n < 1 else int(n)


def tier_shards(n_train_shards: int) -> dict[str, int]:
    """Number of leading train shards per tier (``gpic_lab.shards.tiers``: 1% / 10% / 100%, at least one each)."""
    return tier_shard_counts(n_train_shards)


def _chunks(keys: list[str], n: int) -> list[list[str]]:
    return [keys[i::n] for i in range(n)]


def make_plan(inputs: PackInputs, n_shards: int, n_val: float, n_test: float, seed: int,
              val_shards: int = 1, test_shards: int = 1, workers: int = 1, engine: str = "local",
              scheduler: Any = None, worker_pool: Any = None) -> Plan:
    """Decide membership, split, shard and order of every kept sample (no image bytes are read). ``workers``,
    ``engine``, ``scheduler``, ``worker_pool``: as for `write_plan`, here to scan the source shards' headers in parallel."""
    from gpic_lab.core.licenses import source_of
    from gpic_lab.shards.reader import list_shards
    from gpic_lab.shards.schema import check_meta

    if n_shards < 1 or val_shards < 1 or test_shards < 1:
        raise UsageError("--shards, --val-shards and --test-shards must be >= 1")
    drops, stages, decision_keys = load_drops(inputs.decisions)  # strict types: UsageError before any write
    captions = captions_by_key(inputs.captions)
    meta: dict[str, dict[str, Any]] = {}
    location: dict[str, Any] = {}
    dropped: list[dict[str, str]] = []
    pool = 0
    scanned: set[str] = set()
    for s, checked in _pool(list_shards(inputs.shards), workers, engine, scheduler, worker_pool):
        pool += 1
        if s.key in location:
            dropped.append({"key": s.key, "stage": "pack", "reason": "duplicate-key"})
            continue
        if s.key in drops:
            dropped += [{"key": s.key, "stage": st, "reason": r} for st, r in drops[s.key]]
            location[s.key] = None
            continue
        record = dict(s.meta)
        if s.key in captions:
            record["caption"], record["caption_type"] = captions[s.key]["caption"], captions[s.key]["caption_type"]
        if not str(record.get("caption", "")).strip() or not record.get("caption_type"):
            dropped.append({"key": s.key, "stage": "pack", "reason": "missing-caption"})
            location[s.key] = None
            continue
        if str(record["caption"]).strip() == "NOT VISIBLE.":  # never packed (caption QC: our NOT VISIBLE policy)
            dropped.append({"key": s.key, "stage": "pack", "reason": "not-visible"})
            location[s.key] = None
            continue
        overridden = s.key in captions  # the fast scan checked the source record against check_meta's rules
        if (overridden or not checked) and check_meta({**record, "split": []}):  # never write what `validate`
            # rejects; `split` is rewritten below
            dropped.append({"key": s.key, "stage": "pack", "reason": "schema"})
            location[s.key] = None
            continue
        meta[s.key], location[s.key] = record, s
        if checked:
            scanned.add(s.key)
    check_keys(decision_keys, location)  # a table matching no sample is an error, a partial match a warning
    location = {k: v for k, v in location.items() if v is not None}
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, record in meta.items():
        strata[(record["caption_type"], source_of(record))].append(key)
    for s in strata:
        strata[s].sort(key=lambda k: rank(seed, "split", k))
    total = len(meta)
    nv, nt = _count(n_val, total, "val"), _count(n_test, total, "test")
    if nv + nt > total:
        raise UsageError(f"--val {nv} + --test {nt} exceeds the {total} kept samples")
    qv, qt = _quotas(strata, total, nv), _quotas(strata, total, nt)
    split_keys: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for s in sorted(strata):
        keys = strata[s]
        split_keys["val"] += keys[: qv[s]]
        split_keys["test"] += keys[qv[s]: qv[s] + qt[s]]
        split_keys["train"] += keys[qv[s] + qt[s]:]
    counts = {"train": n_shards, "val": val_shards, "test": test_shards}
    shards: dict[str, list[list[str]]] = {}
    for split, keys in split_keys.items():
        if not keys:
            shards[split] = []
            continue
        n = min(counts[split], len(keys))
        shards[split] = [sorted(chunk, key=lambda k: rank(seed, f"order-{split}", k)) for chunk in _chunks(keys, n)]
    tiers = tier_shards(len(shards["train"]))
    return Plan(shards, tiers, meta, location, dropped, pool, stages, scanned)


def _pool(shards: list[str], workers: int, engine: str, scheduler: Any,
          worker_pool: Any) -> Iterable[tuple[Any, bool]]:
    """(sample, checked) for every sample of the source shards in their order, metadata only: local shards in the
    canonical layout through the fast scan (`shards.fastscan`: the same samples, every record already checked
    against `schema.check_meta`'s rules, so ``checked``), any other through `reader.iter_samples`. With more than
    one worker and PARALLEL_SCAN_SHARDS local shards or more, the fast scans run on the workers (one task per
    shard) and this process turns the columns that come back into samples (measured on 1,000-record shards: a scan
    12 ms, turning it into samples 6 ms, pickling the samples themselves 17 ms)."""
    from gpic_lab.shards.fastscan import samples_from_scan, scan_raw
    from gpic_lab.shards.reader import is_url, iter_samples

    local = list(dict.fromkeys(s for s in shards if not is_url(s)))
    scanned: dict[str, Any] = {}
    # a Dask run without a scheduler would start a cluster just for this
    if workers > 1 and len(local) >= PARALLEL_SCAN_SHARDS and (engine == "local" or scheduler):
        from gpic_lab.engine.backends import map_tasks

        scanned = dict(map_tasks(scan_raw, local, engine, scheduler, workers, pool=worker_pool))
    for shard in shards:
        fast = None if is_url(shard) else samples_from_scan(shard, scanned[shard] if shard in scanned
                                                            else scan_raw(shard))
        if fast is None:
            yield from ((s, False) for s in iter_samples(shard, images=False))
        else:
            yield from ((s, True) for s in fast)


def record_for(plan: Plan, key: str, split: str, shard_index: int) -> dict[str, Any]:
    """The record as written: the source record with caption overrides and its tier list."""
    record = dict(plan.meta[key])
    record["split"] = tiers_of_shard(shard_index, len(plan.shards["train"])) if split == "train" else []
    return record


def shard_name(split: str, index: int) -> str:
    return f"{split}/{SPLIT_PREFIX[split]}_{index:05d}.tar"


def shard_jobs(plan: Plan, out_dir: str | os.PathLike[str], compact: bool = True) -> list[Any]:
    """One `writing.ShardJob` per output shard of the plan (train, then val, then test; by index); ``compact``:
    records as `_travelling` makes them, for tasks that leave this process (else the plan's dicts)."""
    return list(iter_shard_jobs(plan, out_dir, compact))


def iter_shard_jobs(plan: Plan, out_dir: str | os.PathLike[str], compact: bool = True) -> Iterator[Any]:
    """`shard_jobs` one at a time, so a worker can write the first shard while the next job is made. Local paths
    travel absolute: a kept worker (`gpic_lab.engine.pools`) or a Dask worker has a working directory of its own."""
    from gpic_lab.pack.writing import ShardJob
    from gpic_lab.shards.reader import is_url

    out = os.path.abspath(out_dir)
    places: dict[str, str] = {}

    def place(shard: str) -> str:
        found = places.get(shard)
        if found is None:
            found = places[shard] = shard if is_url(shard) else os.path.abspath(shard)
        return found

    for split in ("train", "val", "test"):
        for i, keys in enumerate(plan.shards[split]):
            tiers = record_for(plan, keys[0], split, i)["split"] if keys else []  # as record_for, once per shard
            images = [(place(s.shard), s.image_offset, s.image_size, s.image_ext)
                      for s in map(plan.location.get, keys)]
            records = [_travelling(plan, k) if compact else plan.meta[k] for k in keys]
            yield ShardJob(out, split, i, shard_name(split, i), records, images,
                           list(tiers))  # the worker writes each record with these tiers


def _travelling(plan: Plan, key: str) -> Any:
    """The record as its shard's task carries it: a scanned record as where its JSON lies in the source shard
    ``(offset, size, crc32)``, with the caption override if any (the worker reads it back beside the image and
    rebuilds the record the way `make_plan` built it: `writing.record_of`); any other record as the dict itself.
    A task then carries ~30 bytes per record instead of its ~1 KB of JSON: on Dask, whose scheduler passes every
    task's arguments on, 10 tasks of 490 records cost ~25 ms less CPU in the scheduler's process (2 vCPUs,
    2026-12-02)."""
    import zlib

    if key not in plan.scanned:
        return plan.meta[key]
    sample, record = plan.location[key], plan.meta[key]
    where = (sample.json_offset, sample.json_size, zlib.crc32(sample.json_bytes))
    if record["caption"] == sample.meta.get("caption") and record["caption_type"] == sample.meta.get("caption_type"):
        return where
    return (*where, record["caption"], record["caption_type"])


def write_plan(plan: Plan, out_dir: str | os.PathLike[str], progress: bool = False, workers: int = 1,
               engine: str = "local", scheduler: Any = None, pool: Any = None) -> list[dict[str, Any]]:
    """Write every shard of the plan, one task per shard on `workers` processes of `engine` (1 local worker: in
    this process; `pool`: local workers started earlier); returns the per-shard manifest entries (sha256, sizes,
    mixes) in plan order."""
    from gpic_lab.pack.writing import run_jobs

    in_process = engine == "local" and workers <= 1  # no pickling: the dicts are cheaper than decoding bytes
    return run_jobs(iter_shard_jobs(plan, out_dir, compact=not in_process), workers, engine, scheduler, progress,
                    pool, total=sum(len(shards) for shards in plan.shards.values()))


def pack(paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str], n_shards: int, n_val: float,
         n_test: float, seed: int = 0, val_shards: int = 1, test_shards: int = 1, captions: Sequence[str] = (),
         progress: bool = False, workers: int = 1, engine: str = "local", scheduler: Any = None) -> dict[str, Any]:
    """Pack GPIC shards; returns the manifest (also written to OUT/manifest.json with OUT/datasheet.{json,md} and the
    dataset card OUT/README.md).

    Args:
        paths: source shards/dirs/catalogs, stage dirs or decisions.parquet files, captions parquet files.
        n_val / n_test: samples in val/test (a value in (0, 1) is a fraction of the kept pool).
        captions: extra captions parquet files (caption + caption_type override the source records).
        workers / engine / scheduler: shards are written in parallel, one task per output shard, on `workers`
            processes of a local pool or a Dask cluster (`gpic_lab.engine.backends`; ``scheduler``: its address,
            or a connected ``distributed.Client``, which stays open); the output is byte-identical whatever the
            choice. A local pool's workers wait idle for the next pack of this process (`gpic_lab.engine.pools`).
    """
    from gpic_lab.pack.card import release_facts, write_card
    from gpic_lab.pack.manifest import build_datasheet, build_manifest, write_outputs

    inputs = classify_inputs(paths)
    inputs.captions += caption_files(captions)
    out = Path(out_dir)
    guards.check_sizes(val=n_val, test=n_test)
    guards.check_sources(out, inputs.shards)  # neither reads its own output nor overwrites its sources
    owned = guards.owned_files(out)  # only shards an earlier pack there wrote may be replaced or removed
    from gpic_lab.pack.writing import close_pool, start_pool

    pool = start_pool(workers, engine, scheduler)  # local workers start (a Dask client connects) while planning
    try:
        plan = make_plan(inputs, n_shards, n_val, n_test, seed, val_shards, test_shards, workers, engine, scheduler,
                         pool)
        guards.begin(out, owned, (shard_name(split, i) for split, shards in plan.shards.items()
                                  for i in range(len(shards))))
        entries = write_plan(plan, out, progress, workers, engine, scheduler, pool)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    closing = close_pool(pool, workers)  # local workers wait for the next call; Dask disconnects meanwhile
    guards.finish(out, owned, {e["file"] for e in entries})  # an earlier, larger pack's extra shards
    manifest = build_manifest(entries, plan, seed, n_shards)
    sheet = build_datasheet(plan, entries, seed)
    facts = release_facts(plan, entries)  # dataset licence, totals vs GPIC's published ones
    manifest.update(facts)
    sheet["release"] = facts
    write_outputs(out, manifest, sheet)
    write_card(out, manifest)  # OUT/README.md: datasets.load_dataset(OUT) loads every split
    guards.done(out)
    closing.join()
    return manifest


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
