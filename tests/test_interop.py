"""Hugging Face datasets and polars interop over GPIC shards and catalogs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.shards.catalog import write_catalog
from gpic_lab.shards.interop import catalog_summary, scan_catalog, to_hf_dataset
from gpic_lab.shards.reader import iter_samples


def test_hf_dataset_from_shards_is_typed_and_complete(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(2, 3)
    ds = to_hf_dataset(shards, cache_dir=tmp_path / "hf")
    expected = {s.key: s for s in iter_samples(shards)}
    assert len(ds) == len(expected) == 6
    assert ds.features["caption_type"].names == ["tag", "short", "medium", "long"]
    row = ds[0]
    sample = expected[row["key"]]
    assert row["image"].size == (sample.meta["img_width"], sample.meta["img_height"])
    assert ds.features["caption_type"].int2str(row["caption_type"]) == sample.meta["caption_type"]
    assert row["split"] == ["nano", "lite", "full"]


def test_hf_streaming_dataset_has_one_input_shard_per_tar(tiny_shards) -> None:
    shards = tiny_shards(3, 2)
    ds = to_hf_dataset(shards, streaming=True, images=False)
    assert ds.num_shards == 3
    keys = [row["key"] for row in ds]
    assert sorted(keys) == sorted(s.key for s in iter_samples(shards, images=False))
    assert "image" not in ds.features


def test_hf_dataset_from_catalog_and_polars_lazy_queries(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(2, 4)
    out = tmp_path / "cat.parquet"
    write_catalog(shards, out)
    ds = to_hf_dataset(out)
    assert len(ds) == 8 and "image_offset" in ds.column_names
    import polars as pl

    lazy = scan_catalog(out)
    assert isinstance(lazy, pl.LazyFrame)
    wide = lazy.filter(pl.col("img_width") >= 322).select("key").collect()
    assert len(wide) == 4  # widths are 320..323 per shard
    summary = catalog_summary(str(tmp_path / "*.parquet"))
    assert int(summary["samples"].sum()) == 8
    assert set(summary["caption_type"]) == {"tag", "short", "medium", "long"}


def test_missing_inputs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="catalog not found"):
        scan_catalog(tmp_path / "nope.parquet")
    with pytest.raises(UsageError, match="no .tar shards"):
        to_hf_dataset(tmp_path)


def test_uncaptioned_collected_shards_load_with_a_missing_label(tmp_path: Path, sample_dir: Path) -> None:
    import json

    from gpic_lab.shards.writer import write_shard

    samples = list(iter_samples(sample_dir / "train"))[:2]
    uncaptioned = [(s.key, {**json.loads(s.json_bytes), "caption_type": "", "caption": ""}, s.image, s.image_ext)
                   for s in samples]
    shard = tmp_path / "gpic_collected_00000.tar"
    write_shard(shard, uncaptioned)
    rows = list(to_hf_dataset(shard, streaming=True, images=False))
    assert [r["key"] for r in rows] == [s.key for s in samples]
    assert all(r["caption_type"] is None and r["caption"] == "" for r in rows)
