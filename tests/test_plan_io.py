"""pack's plan inputs streamed through pyarrow datasets: decisions checked batch by batch with only their dropped
rows kept, the catalog's distinct shards."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.errors import GpicError
from gpic_lab.pack import plan_io
from gpic_lab.pack.inputs import check_keys, load_drops


def test_dropped_rows_read_only_drops_of_every_table(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 5000
    keys = [f"k{i:05d}" for i in range(n)]
    keep = [i % 7 != 0 for i in range(n)]
    reason = [None if k else "blur" for k in keep]
    pq.write_table(pa.table({"key": keys, "stage": ["quality"] * n, "keep": keep, "reason": reason}),
                   tmp_path / "q.parquet", row_group_size=512)
    pd.DataFrame({"key": ["k00000", "k00001"], "stage": ["review", "review"], "keep": [False, True],
                  "reason": ["review:reject", None]}).to_parquet(tmp_path / "r.parquet")
    tables = [str(tmp_path / "q.parquet"), str(tmp_path / "r.parquet")]
    drops, stages, checked = load_drops(tables)
    assert stages == ["quality", "review"]
    assert set(drops) == {k for k, kept in zip(keys, keep, strict=True) if not kept}
    assert drops["k00000"] == [("quality", "blur"), ("review", "review:reject")]
    check_keys(checked, set(keys))  # every key of both tables is pooled: no error, no warning
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(GpicError, match="junk.parquet: unreadable parquet input"):
        load_drops([str(tmp_path / "junk.parquet")])


def test_catalog_shards_are_distinct_and_sorted(tmp_path: Path) -> None:
    pd.DataFrame({"key": list("abcd"), "shard": ["s2.tar", "s1.tar", "s2.tar", "s1.tar"]}).to_parquet(tmp_path / "c.parquet")
    assert plan_io.catalog_shards(tmp_path / "c.parquet") == ["s1.tar", "s2.tar"]
