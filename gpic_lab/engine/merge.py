"""Out-of-core merge of per-shard decision tables into one decisions.parquet, one row per key.

``run_stage`` used to concatenate every shard's table in pandas; at 100 M rows that is tens of GB. Here memory
is bounded by one shard's table plus one key bucket:

1. schemas: the footers of every shard table are unified (a column missing from a shard, e.g. ``detail`` of
   unreadable rows, becomes nulls; a column that is null-typed in an empty shard takes the others' type);
2. duplicate keys: ``key`` and ``keep`` of each shard are spilled into ``ceil(rows / BUCKET_ROWS)`` buckets by key
   hash (``gpic_lab.shards.buckets``; Parquet files in a temp dir beside the output); each bucket is read alone and
   yields the rows to leave out: for a key seen several times, every row but the first dropped one (or the first one when none was
   dropped), the rule of ``stages.one_row_per_key``;
3. the shard tables are streamed again, in shard order, into one Parquet writer (atomically renamed), leaving
   those rows out, while the counts per reason × license family × source are accumulated.

The result is the table ``one_row_per_key(pd.concat(shards))`` gave, in the same order.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BUCKET_ROWS = 500_000
EMPTY_COLUMNS = ("key", "shard", "stage", "keep", "reason", "license", "license_family", "source")


def unified_schema(files: Sequence[Path]) -> Any:
    """One Arrow schema for every table (permissive promotion: null-typed columns take the others' types)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f).remove_metadata() for f in files]
    if not schemas:
        return pa.schema([(c, pa.bool_() if c == "keep" else pa.string()) for c in EMPTY_COLUMNS])
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in schema])


def _conform(table: Any, schema: Any) -> Any:
    """``table`` with every column of ``schema``, in its order and types (missing ones as nulls)."""
    import pyarrow as pa

    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _key_parts(files: Sequence[Path]) -> Any:
    """(key, keep, file, row) of every table, one polars frame per table."""
    import polars as pl
    import pyarrow.parquet as pq

    for i, f in enumerate(files):
        part = pl.from_arrow(pq.read_table(f, columns=["key", "keep"]))
        yield part.with_row_index("row").with_columns(file=pl.lit(i, pl.UInt32), keep=pl.col("keep").cast(pl.Boolean))


def rows_to_skip(files: Sequence[Path], tmp: Path) -> tuple[dict[int, set[int]], int]:
    """{file index: rows to leave out} and how many keys had several rows."""
    import polars as pl
    import pyarrow.parquet as pq

    from gpic_lab.shards import buckets

    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    skip: dict[int, set[int]] = {}
    duplicate_keys = 0
    for bucket in buckets.spill(_key_parts(files), buckets.n_buckets(total, BUCKET_ROWS), tmp):
        rows = pl.read_parquet(bucket).filter(pl.col("key").is_duplicated())
        if not len(rows):
            continue
        duplicate_keys += rows["key"].n_unique()
        ranked = rows.sort(["keep", "file", "row"])  # dropped rows first, then input order
        winners = ranked.unique(subset="key", keep="first").select("file", "row")
        losers = rows.join(winners, on=["file", "row"], how="anti")
        for file, row in losers.select("file", "row").iter_rows():
            skip.setdefault(int(file), set()).add(int(row))
    return skip, duplicate_keys


def merge_files(files: Sequence[Path], out: Path) -> dict[str, Any]:
    """Stream ``files`` into ``out`` (one row per key); returns samples, kept, duplicate_keys and the counts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from gpic_lab.fsio import atomic_path

    schema = unified_schema(files)
    counts: Counter[tuple[str, str, str]] = Counter()
    samples = kept = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=out.parent) as tmp:
        skip, duplicate_keys = rows_to_skip(files, Path(tmp))
        with atomic_path(out) as target:
            writer = pq.ParquetWriter(target, schema)
            try:
                for i, f in enumerate(files):
                    table = _conform(pq.read_table(f), schema)
                    if skip.get(i):
                        mask = np.ones(len(table), bool)
                        mask[sorted(skip[i])] = False
                        table = table.filter(pa.array(mask))
                    writer.write_table(table)
                    samples += len(table)
                    kept += int(pc.sum(table.column("keep").cast(pa.int64())).as_py() or 0)
                    _count(table, counts)
            finally:
                writer.close()
    return {"samples": samples, "kept": kept, "duplicate_keys": duplicate_keys, "counts": counts}


def _count(table: Any, counts: Counter[tuple[str, str, str]]) -> None:
    """Add the table's rows per (reason or 'kept', license_family, source)."""
    import pyarrow as pa

    if not len(table):
        return
    reason = table.column("reason").cast(pa.string()).fill_null("kept")
    grouped = pa.table({"reason": reason, "license_family": table.column("license_family").cast(pa.string()),
                        "source": table.column("source").cast(pa.string())}).group_by(
        ["reason", "license_family", "source"]).aggregate([([], "count_all")])
    for row in grouped.to_pylist():
        counts[(row["reason"], row["license_family"], row["source"])] += row["count_all"]


def counts_frame(counts: Counter[tuple[str, str, str]]) -> Any:
    """counts.csv: counts per reason × license_family × source, sorted (``records.reason_counts``'s layout)."""
    import pandas as pd

    rows = [{"reason": r, "license_family": f, "source": s, "count": n} for (r, f, s), n in counts.items()]
    frame = pd.DataFrame(rows, columns=["reason", "license_family", "source", "count"])
    return frame.sort_values(["reason", "license_family", "source"], na_position="last").reset_index(drop=True)


def reasons_frame(counts: Counter[tuple[str, str, str]], total: int) -> Any:
    """reasons.csv: counts and shares per reason, ``kept`` first (``stages.reasons_table``'s layout)."""
    import pandas as pd

    per: Counter[str] = Counter()
    for (reason, _f, _s), n in counts.items():
        per[reason] += n
    table = pd.DataFrame({"reason": list(per), "count": list(per.values())}, columns=["reason", "count"])
    table["share"] = (table["count"] / max(total, 1)).round(4)
    table["_dropped"] = table["reason"] != "kept"
    return table.sort_values(["_dropped", "count", "reason"], ascending=[True, False, True]) \
        .drop(columns="_dropped").reset_index(drop=True)
