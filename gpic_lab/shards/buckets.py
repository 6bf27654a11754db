"""Key buckets: find repeated keys in tables larger than memory.

Keys are spilled, in batches, into ``ceil(rows / BUCKET_ROWS)`` Parquet files by a hash of the key (in a temp
directory), then each bucket is read alone: every copy of a key lands in the same bucket, so memory is bounded by
one batch plus one bucket, whatever the number of rows. Used by the catalog explorer (``explore_lazy``) and the
stage merge (``gpic_lab.engine.merge``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

BUCKET_ROWS = 100_000
HASH_SEED = 7


def n_buckets(rows: int, bucket_rows: int | None = None) -> int:
    """How many buckets keep each near ``bucket_rows`` rows (at least one)."""
    return max(1, -(-rows // (bucket_rows or BUCKET_ROWS)))


def spill(parts: Iterable[Any], buckets: int, tmp: Path, key: str = "key") -> list[Path]:
    """Write polars frames (each with a ``key`` column) into ``buckets`` Parquet files by key hash; returns the
    files written (a bucket no row fell into has none)."""
    import polars as pl
    import pyarrow.parquet as pq

    writers: dict[int, Any] = {}
    paths = [Path(tmp) / f"bucket-{b:05d}.parquet" for b in range(buckets)]
    try:
        for part in parts:
            if not len(part):
                continue
            part = part.with_columns(_bucket=(pl.col(key).hash(HASH_SEED) % buckets).cast(pl.UInt32))
            for (b,), chunk in part.partition_by("_bucket", as_dict=True, include_key=False).items():
                table = chunk.to_arrow()
                if b not in writers:
                    writers[b] = pq.ParquetWriter(paths[b], table.schema)
                writers[b].write_table(table)
    finally:
        for w in writers.values():
            w.close()
    return [p for b, p in enumerate(paths) if b in writers]


def key_batches(path: str | Path, column: str = "key") -> Iterator[Any]:
    """The ``column`` of a Parquet file as polars frames, one per row group (read one at a time)."""
    import polars as pl
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        for i in range(pf.num_row_groups):
            yield pl.from_arrow(pf.read_row_group(i, columns=[column])).rename({column: "key"})


def repeated_keys(path: str | Path, column: str = "key", bucket_rows: int | None = None) -> dict[str, int]:
    """{"rows", "distinct", "repeated"} of a Parquet file's ``column``: rows, distinct keys, keys seen more than once."""
    import tempfile

    import polars as pl
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    distinct = repeated = 0
    with tempfile.TemporaryDirectory(prefix=".keys-", dir=Path(path).parent) as tmp:
        for bucket in spill(key_batches(path, column), n_buckets(rows, bucket_rows), Path(tmp)):
            counts = pl.read_parquet(bucket).group_by("key").len()
            distinct += len(counts)
            repeated += int((counts["len"] > 1).sum())
    return {"rows": rows, "distinct": distinct, "repeated": repeated}
