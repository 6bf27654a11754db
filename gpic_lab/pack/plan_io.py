"""The tables pack's plan reads, through pyarrow datasets: only what the plan needs is held in memory.

- ``open_dataset``: one Parquet file as a dataset (``gpic_lab.pack.inputs`` streams decisions tables through it:
  checked batch by batch, only their dropped rows kept);
- ``catalog_shards``: the distinct shards a catalog lists (one string column scanned batch by batch).
"""

from __future__ import annotations

import os
from typing import Any

from gpic_lab.errors import GpicError, exception_line


def open_dataset(path: str | os.PathLike[str]) -> Any:
    """A pyarrow dataset over one Parquet file (GpicError naming the file when it is not readable Parquet)."""
    import pyarrow.dataset as ds

    try:
        return ds.dataset(str(path), format="parquet")
    except Exception as exc:  # not Parquet, truncated footer, missing file
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc


def catalog_shards(path: str | os.PathLike[str]) -> list[str]:
    """The distinct values of a catalog's ``shard`` column, sorted."""
    import pyarrow.compute as pc

    shards: set[str] = set()
    try:
        for batch in open_dataset(path).to_batches(columns=["shard"]):
            shards.update(str(s) for s in pc.unique(batch.column(0)).to_pylist())
    except GpicError:
        raise
    except Exception as exc:
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc
    return sorted(shards)
