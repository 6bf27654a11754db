"""The tables pack's plan reads, through pyarrow datasets: only what the plan needs is held in memory.

- ``dropped_rows``: the dropped rows of every decisions table (``keep == False`` pushed down to the Parquet
  scan, three columns), so a 100 M-row table whose stage dropped a few percent costs those few percent;
- ``catalog_shards``: the distinct shards a catalog lists (one string column scanned batch by batch).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gpic_lab.errors import GpicError, exception_line


def _dataset(path: str | os.PathLike[str]) -> Any:
    import pyarrow.dataset as ds

    try:
        return ds.dataset(str(path), format="parquet")
    except Exception as exc:  # not Parquet, truncated footer, missing file
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc


def dropped_rows(paths: Sequence[str]) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """key -> [(stage, reason)] for every dropped key of the tables, and the stages they hold (sorted)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    drops: dict[str, list[tuple[str, str]]] = defaultdict(list)
    stages: set[str] = set()
    for path in paths:
        dataset = _dataset(path)
        try:
            for batch in dataset.to_batches(columns=["stage"]):
                stages.update(str(s) for s in pc.unique(batch.column(0)).to_pylist())
            dropped = dataset.to_batches(columns=["key", "stage", "reason"], filter=ds.field("keep") == False)  # noqa: E712
            for batch in dropped:
                for key, stage, reason in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True):
                    drops[key].append((str(stage), str(reason or "dropped")))
        except GpicError:
            raise
        except Exception as exc:  # a column missing or of another type
            raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc
    return drops, sorted(stages)


def catalog_shards(path: str | os.PathLike[str]) -> list[str]:
    """The distinct values of a catalog's ``shard`` column, sorted."""
    import pyarrow.compute as pc

    shards: set[str] = set()
    try:
        for batch in _dataset(path).to_batches(columns=["shard"]):
            shards.update(str(s) for s in pc.unique(batch.column(0)).to_pylist())
    except GpicError:
        raise
    except Exception as exc:
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc
    return sorted(shards)
