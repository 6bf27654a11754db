"""Notebook 01's lazy tables equal the pandas ones; exact quantiles and key buckets on awkward inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpic_lab.shards import buckets, explore, explore_lazy


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic catalog (the bench's generator) with two thousand rows in row groups of 700."""
    from gpic_lab.benches import catalog_explore

    path = tmp_path_factory.mktemp("cat") / "catalog.parquet"
    old = catalog_explore.ROW_GROUP
    catalog_explore.ROW_GROUP = 700
    try:
        catalog_explore.generate(path, 2000, seed=3)
    finally:
        catalog_explore.ROW_GROUP = old
    return path


def _pandas_frame(path: Path) -> pd.DataFrame:
    return explore.with_derived(pd.read_parquet(path))


@pytest.mark.parametrize("name", ["license_table", "caption_mix", "caption_lengths", "size_table", "shard_counts"])
def test_lazy_tables_equal_the_pandas_tables(catalog: Path, sample_dir: Path, tmp_path: Path, name: str) -> None:
    from gpic_lab.shards.catalog import write_catalog

    sample = tmp_path / "sample.parquet"
    write_catalog([sample_dir / d for d in ("train", "val", "test")], sample, workers=1)
    for path in (catalog, sample):
        expected = getattr(explore, name)(_pandas_frame(path))
        got = getattr(explore_lazy, name)(explore_lazy.scan(path))
        assert list(got.index) == list(expected.index) and list(got.columns) == list(expected.columns)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_names=False, rtol=1e-9)


def test_exact_quantiles_match_numpy_with_few_bins(tmp_path: Path) -> None:
    import polars as pl

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.lognormal(0, 2, 997), [5.0, 5.0, 5.0]])  # skewed, with ties
    lf = pl.LazyFrame({"v": values})
    qs = [0.0, 0.05, 0.5, 0.95, 1.0]
    for bins in (1, 7, 65536):
        assert explore_lazy.exact_quantiles(lf, "v", qs, bins=bins) == pytest.approx(np.quantile(values, qs), rel=1e-12)
    assert explore_lazy.exact_quantiles(pl.LazyFrame({"v": [2.0] * 5}), "v", qs) == [2.0] * 5


def test_repeated_keys_across_buckets(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = [f"{i:064x}" for i in range(500)] + ["0" * 64, f"{7:064x}", f"{7:064x}"]
    pq.write_table(pa.table({"key": keys}), tmp_path / "k.parquet", row_group_size=64)
    for bucket_rows in (1_000_000, 50, 1):
        got = buckets.repeated_keys(tmp_path / "k.parquet", bucket_rows=bucket_rows)
        assert got == {"rows": 503, "distinct": 500, "repeated": 2}, bucket_rows
    assert not list(tmp_path.glob(".keys-*")), "temp buckets left behind"


def test_sample_rows_are_seeded_rows_of_the_catalog(catalog: Path) -> None:
    a = explore_lazy.sample_rows(catalog, 5, seed=1)
    b = explore_lazy.sample_rows(catalog, 5, seed=1)
    assert len(a) == 5 and a["key"].tolist() == b["key"].tolist()
    assert set(a["key"]) <= set(pd.read_parquet(catalog, columns=["key"])["key"])
    assert explore_lazy.overview(explore_lazy.scan(catalog)) == {"samples": 2000, "shards": 1}
