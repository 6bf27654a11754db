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

from gpic_lab.errors import UsageError


@dataclass(frozen=True)
class ShardJob:
    """One output shard: its file name under ``out`` and, per sample in write order, the record and the image's
    location ``(source shard, offset, size, extension)``."""

    out: str
    split: str
    index: int
    name: str
    records: list[dict[str, Any]]
    images: list[tuple[str, int, int, str]]


class ImageReader:
    """Image bytes by offset with one open handle per local shard (URLs go through read_range)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, shard: str, offset: int, size: int, key: str, ext: str) -> bytes:
        from gpic_lab.shards.reader import is_url, read_range

        if is_url(shard):
            return read_range(shard, offset, size)
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(shard, os.O_RDONLY)
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise UsageError(f"{shard}:{key}.{ext}: short read (shard changed?)")
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def write_job(job: ShardJob) -> dict[str, Any]:
    """Write one shard; returns its manifest entry (file, split, index, samples, bytes, sha256, tiers, mixes)."""
    from gpic_lab.core.licenses import source_of
    from gpic_lab.shards.writer import encode_meta, write_shard

    reader = ImageReader()
    try:
        samples = ((r["key"], encode_meta(r), reader.read(shard, offset, size, r["key"], ext), ext)
                   for r, (shard, offset, size, ext) in zip(job.records, job.images, strict=True))
        info = write_shard(Path(job.out) / job.name, samples)
    finally:
        reader.close()
    return {"file": job.name, "split": job.split, "index": job.index, "samples": info["samples"],
            "bytes": info["bytes"], "sha256": info["sha256"],
            "tiers": job.records[0]["split"] if job.records else [],
            "caption_types": dict(sorted(Counter(r["caption_type"] for r in job.records).items())),
            "sources": dict(sorted(Counter(source_of(r) for r in job.records).items()))}


def warm_up(_: int = 0) -> int:
    """A worker task that only imports what `write_job` needs, so a pool started early is ready when the plan is."""
    from gpic_lab.core import licenses  # noqa: F401
    from gpic_lab.shards import writer  # noqa: F401

    return os.getpid()


def start_pool(workers: int, engine: str) -> Any:
    """A local pool whose workers start (and import) while the caller plans; None when there is nothing to start
    early (one worker, or Dask, whose workers are already running)."""
    if engine != "local" or workers <= 1:
        return None
    from gpic_lab.engine.backends import local_pool

    pool = local_pool(workers)
    for i in range(workers):
        pool.submit(warm_up, i)
    return pool


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
