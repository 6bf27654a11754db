"""Writing a pack plan's shards: one task per output shard, run in this process, a local process pool or on Dask
(`gpic_lab.engine.backends.map_tasks`).

A task carries everything its shard needs (each record, or where a scanned record's JSON lies, and where each image
lies in the source shards), reads them by offset and writes the shard with `gpic_lab.shards.writer.write_shard`, which hashes it as it writes.
A shard's bytes depend only on its task, and the manifest lists the entries in plan order, not in the order tasks
finish: the output is byte-identical whatever the number of workers or the engine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ShardJob:
    """One output shard: its file name under ``out`` and, per sample in write order, the record (the plan's, whose
    ``split`` field is replaced by ``tiers`` as it is written; see `record_of` for the forms it travels in) and the
    image's location ``(source shard, offset, size, extension)``."""

    out: str
    split: str
    index: int
    name: str
    records: list[Any]
    images: list[tuple[str, int, int, str]]
    tiers: list[str]


class ImageReader:
    """Where each image lies, with one open handle per local shard: a local image is copied by the shard writer
    straight from the source into its buffer (`writer.Located`); a URL's is fetched with read_range. Scanned
    records are read back from the same handles (`record_bytes`)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def _fd(self, shard: str) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(shard, os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def locate(self, shard: str, offset: int, size: int, key: str, ext: str) -> Any:
        """The image as the shard writer takes it: a `Located` range of the open local shard, or bytes for a URL."""
        from gpic_lab.shards.reader import is_url, read_range
        from gpic_lab.shards.writer import Located

        if is_url(shard):
            return read_range(shard, offset, size)
        return Located(self._fd(shard), offset, size, f"{shard}:{key}.{ext}")

    def record_bytes(self, shard: str, offset: int, size: int, crc: int) -> bytes:
        """The JSON member the plan read at ``offset`` of a local shard, checked against the CRC-32 it had then."""
        import zlib

        from gpic_lab.errors import UsageError

        raw = os.pread(self._fd(shard), size, offset)
        if len(raw) != size or zlib.crc32(raw) != crc:
            raise UsageError(f"{shard}: the JSON member at byte {offset} changed since the plan read it (shard "
                             "rewritten?); run pack again")
        return raw

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def record_of(item: Any, reader: ImageReader, shard: str) -> dict[str, Any]:
    """A record as a task received it: the dict itself, or where a scanned record's JSON lies in its source
    ``shard`` ``(offset, size, crc32)``, with the caption override ``(..., caption, caption_type)`` if any: read
    back, checked and decoded as the fast scan decoded it, the override applied as the plan applied it."""
    from gpic_lab.shards.fastscan import decode_record

    if isinstance(item, dict):
        return item
    offset, size, crc, *override = item
    record = decode_record(reader.record_bytes(shard, offset, size, crc))
    if override:
        record["caption"], record["caption_type"] = override
    return record


def write_job(job: ShardJob) -> dict[str, Any]:
    """Write one shard; returns its manifest entry (file, split, index, samples, bytes, sha256, tiers, mixes) and
    the counts the datasheet sums over shards (`shard_counts`)."""
    from gpic_lab.shards.writer import encode_meta, write_shard

    reader = ImageReader()
    try:
        records = [record_of(item, reader, where[0]) for item, where in zip(job.records, job.images, strict=True)]
        samples = ((r["key"], encode_meta({**r, "split": job.tiers}), reader.locate(shard, offset, size, r["key"], ext), ext)
                   for r, (shard, offset, size, ext) in zip(records, job.images, strict=True))
        info = write_shard(Path(job.out) / job.name, samples)
    finally:
        reader.close()
    return {"file": job.name, "split": job.split, "index": job.index, "samples": info["samples"],
            "bytes": info["bytes"], "sha256": info["sha256"], "tiers": list(job.tiers) if records else [],
            **shard_counts(records)}


def shard_counts(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the manifest and datasheet count per shard, counted where the shard is written (in parallel, not in the
    process that waits for every shard): caption types, sources, ``licenses`` as sorted ``[family, license, n]``
    rows, and the sums of ``img_height``, ``img_width`` and pixels."""
    from gpic_lab.core.licenses import license_family, source_of

    licenses = Counter((license_family(r.get("license", ""), r.get("license_url")), r.get("license", ""))
                       for r in records)
    heights = [int(r["img_height"]) for r in records]
    widths = [int(r["img_width"]) for r in records]
    return {"caption_types": dict(sorted(Counter(r["caption_type"] for r in records).items())),
            "sources": dict(sorted(Counter(source_of(r) for r in records).items())),
            "licenses": [[f, lic, n] for (f, lic), n in sorted(licenses.items())],
            "height_sum": sum(heights), "width_sum": sum(widths),
            "pixels": sum(h * w for h, w in zip(heights, widths, strict=True))}


def warm_up(_: int = 0) -> int:
    """A worker task that only imports what `write_job` needs, so a pool started early is ready when the plan is."""
    from gpic_lab.core import licenses  # noqa: F401
    from gpic_lab.shards import fastscan, writer  # noqa: F401

    return os.getpid()


WORKER_MODULES = ("gpic_lab.pack.writing", "gpic_lab.shards.writer", "gpic_lab.shards.reader", "gpic_lab.shards.fastscan",
                  "gpic_lab.core.licenses")


def start_pool(workers: int, engine: str, scheduler: Any = None) -> Any:
    """A local pool whose workers start while the caller plans (or, kept from an earlier call, already run: see
    `gpic_lab.engine.pools`), or a connection to a running Dask ``scheduler`` made meanwhile
    (`backends.DaskConnection`); None when there is nothing to start early (one local worker; Dask without a
    scheduler, whose LocalCluster `map_tasks` starts and closes).

    New workers are started from a background thread (starting one waits for the forkserver to fork it, and the
    first waits for the forkserver itself to start), and the modules a task needs are imported once by the
    forkserver (when this process starts it here), not once per worker: on 2 cores the workers' imports (~40 ms
    each) would otherwise take CPU from the plan being made meanwhile."""
    from gpic_lab.engine.backends import DaskConnection
    from gpic_lab.engine.pools import take_pool

    if engine == "dask" and scheduler:
        return DaskConnection(scheduler)
    if engine != "local" or workers <= 1:
        return None
    import threading

    pool, new = take_pool(workers)
    if new:
        _preload_in_forkserver(WORKER_MODULES)
        threading.Thread(target=_warm, args=(pool, workers), name="gpic-lab-pack-pool-start", daemon=True).start()
    return pool


def _warm(pool: Any, workers: int) -> None:
    """Submit one `warm_up` per worker, which starts the workers; a pool shut down meanwhile (the plan failed)
    refuses them, which is fine."""
    try:
        for i in range(workers):
            pool.submit(warm_up, i)
    except RuntimeError:
        pass


def close_pool(pool: Any, workers: int) -> Any:
    """Done with ``pool`` (from `start_pool`, or None; every task finished): a local pool waits idle for the next
    call (`pools.give_back_pool`); a Dask connection closes in a background thread, while the caller writes the
    manifest. Returns that thread (join it before returning)."""
    import threading

    from gpic_lab.engine.backends import DaskConnection
    from gpic_lab.engine.pools import give_back_pool

    if pool is not None and not isinstance(pool, DaskConnection):
        give_back_pool(pool, workers)
        pool = None
    thread = threading.Thread(target=pool.shutdown if pool is not None else lambda: None,
                              name="gpic-lab-pack-pool-close")
    thread.start()
    return thread


def _preload_in_forkserver(modules: Sequence[str]) -> None:
    """Add ``modules`` to what the forkserver imports when it starts (no effect once it runs)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    current = list(getattr(server, "_preload_modules", None) or ["__main__"])
    forkserver.set_forkserver_preload(current + [m for m in modules if m not in current])


def run_jobs(jobs: Iterable[ShardJob], workers: int = 1, engine: str = "local", scheduler: Any = None,
             progress: bool = False, pool: Any = None, total: int | None = None) -> list[dict[str, Any]]:
    """Write every shard (``workers`` processes of ``engine``; 1 local worker writes in this process; ``pool``: one
    from `start_pool`); the manifest entries come back in the order of ``jobs``. ``jobs`` may be a generator: a
    local pool starts on each job as it is made (``total``: their number, for the progress bar)."""
    import sys

    from tqdm import tqdm

    from gpic_lab.engine.backends import map_tasks

    names: list[str] = []

    def made() -> Iterator[ShardJob]:
        for job in jobs:
            names.append(job.name)
            yield job

    entries: dict[str, dict[str, Any]] = {}
    if total is None and isinstance(jobs, Sequence):
        total = len(jobs)
    with tqdm(total=total, unit="shard", desc="pack", file=sys.stderr, disable=not progress) as bar:
        for job, entry in map_tasks(write_job, made(), engine, scheduler, workers, label=lambda j: j.name,
                                    pool=pool):
            entries[job.name] = entry  # in completion order: put back in plan order below
            bar.update(1)
    return [entries[name] for name in names]
