"""Writing a pack plan's shards: one task per output shard, run in this process, a local process pool or on Dask
(`gpic_lab.engine.backends.map_tasks`).

A task carries everything its shard needs (records as written, where each image lives in the source shards), reads
the images by offset and writes the shard with `gpic_lab.shards.writer.write_shard`, which hashes it as it writes.
A shard's bytes depend only on its task, and the manifest lists the entries in plan order, not in the order tasks
finish: the output is byte-identical whatever the number of workers or the engine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
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
    straight from the source into its buffer (`writer.Located`); a URL's is fetched with read_range."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def locate(self, shard: str, offset: int, size: int, key: str, ext: str) -> Any:
        """The image as the shard writer takes it: a `Located` range of the open local shard, or bytes for a URL."""
        from gpic_lab.shards.reader import is_url, read_range
        from gpic_lab.shards.writer import Located

        if is_url(shard):
            return read_range(shard, offset, size)
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(shard, os.O_RDONLY | os.O_CLOEXEC)
        return Located(fd, offset, size, f"{shard}:{key}.{ext}")

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def record_of(item: Any) -> dict[str, Any]:
    """A record as a task received it: the dict itself, the source JSON bytes of a scanned record, or those bytes
    with a caption override ``(bytes, caption, caption_type)``, applied as the plan applied it."""
    from gpic_lab.shards.fastscan import decode_record

    if isinstance(item, dict):
        return item
    if isinstance(item, bytes):
        return decode_record(item)
    raw, caption, caption_type = item
    record = decode_record(raw)
    record["caption"], record["caption_type"] = caption, caption_type
    return record


def write_job(job: ShardJob) -> dict[str, Any]:
    """Write one shard; returns its manifest entry (file, split, index, samples, bytes, sha256, tiers, mixes)."""
    from gpic_lab.core.licenses import source_of
    from gpic_lab.shards.writer import encode_meta, write_shard

    records = [record_of(item) for item in job.records]
    reader = ImageReader()
    try:
        samples = ((r["key"], encode_meta({**r, "split": job.tiers}), reader.locate(shard, offset, size, r["key"], ext), ext)
                   for r, (shard, offset, size, ext) in zip(records, job.images, strict=True))
        info = write_shard(Path(job.out) / job.name, samples)
    finally:
        reader.close()
    return {"file": job.name, "split": job.split, "index": job.index, "samples": info["samples"],
            "bytes": info["bytes"], "sha256": info["sha256"],
            "tiers": list(job.tiers) if records else [],
            "caption_types": dict(sorted(Counter(r["caption_type"] for r in records).items())),
            "sources": dict(sorted(Counter(source_of(r) for r in records).items()))}


def warm_up(_: int = 0) -> int:
    """A worker task that only imports what `write_job` needs, so a pool started early is ready when the plan is."""
    from gpic_lab.core import licenses  # noqa: F401
    from gpic_lab.shards import fastscan, writer  # noqa: F401

    return os.getpid()


WORKER_MODULES = ("gpic_lab.pack.writing", "gpic_lab.shards.writer", "gpic_lab.shards.reader", "gpic_lab.shards.fastscan",
                  "gpic_lab.core.licenses")


def start_pool(workers: int, engine: str) -> Any:
    """A local pool whose workers start while the caller plans; None when there is nothing to start early (one
    worker, or Dask, whose workers are already running).

    The workers are started from a background thread (starting one waits for the forkserver to fork it, and the
    first waits for the forkserver itself to start), and the modules a task needs are imported once by the
    forkserver (when this process starts it here), not once per worker: on 2 cores the workers' imports (~40 ms
    each) would otherwise take CPU from the plan being made meanwhile."""
    if engine != "local" or workers <= 1:
        return None
    import threading

    from gpic_lab.engine.backends import local_pool

    _preload_in_forkserver(WORKER_MODULES)
    pool = local_pool(workers)
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


def close_pool(pool: Any) -> Any:
    """Shut ``pool`` (from `start_pool`, or None) down in a background thread, so its idle workers exit while the
    caller writes the manifest; returns the thread (join it before returning)."""
    import threading

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


def run_jobs(jobs: Sequence[ShardJob], workers: int = 1, engine: str = "local", scheduler: str | None = None,
             progress: bool = False, pool: Any = None) -> list[dict[str, Any]]:
    """Write every shard (``workers`` processes of ``engine``; 1 local worker writes in this process; ``pool``: one
    from `start_pool`); the manifest entries come back in the order of ``jobs``."""
    import sys

    from tqdm import tqdm

    from gpic_lab.engine.backends import map_tasks

    entries: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(jobs), unit="shard", desc="pack", file=sys.stderr, disable=not progress) as bar:
        for job, entry in map_tasks(write_job, list(jobs), engine, scheduler, workers, label=lambda j: j.name,
                                    pool=pool):
            entries[job.name] = entry  # in completion order: put back in plan order below
            bar.update(1)
    return [entries[job.name] for job in jobs]
