"""The out-of-core stage merge gives the table the in-memory pandas merge gave, whatever the bucket count."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.engine import merge as engine_merge
from gpic_lab.engine.records import Decision, decisions_frame, reason_counts
from gpic_lab.engine.stages import one_row_per_key, reasons_table


def _shards(tmp_path: Path) -> list[Path]:
    meta = {f"k{i}": {"license": "CC BY 2.0", "attribution": "x via Flickr"} for i in range(40)}
    tables = [
        decisions_frame([Decision(f"k{i}", i % 3 != 0, None if i % 3 else "blur", scores={"x": i / 10})
                         for i in range(0, 15)], "quality", meta, {f"k{i}": "a.tar" for i in range(40)}),
        # k3 (dropped above) kept here, k5 (kept above) dropped here, k7 twice in one shard; a problem row with detail
        pd.concat([decisions_frame([Decision("k3", True), Decision("k5", False, "blank", scores={"x": 0.5}),
                                    Decision("k7", True), Decision("k7", False, "too-small"), Decision("k20", True)],
                                   "quality", meta, {}),
                   pd.DataFrame([{"key": "b/003", "shard": "b.tar", "stage": "quality", "keep": False,
                                  "reason": "unreadable:bad-json", "license": "", "license_family": "unknown",
                                  "source": "other", "detail": "b.tar:003.json: bad-json"}])], ignore_index=True),
        decisions_frame([], "quality", {}, {}),  # an empty shard (columns of null type)
        decisions_frame([Decision(f"k{i}", True, scores={"y": 1.0}) for i in range(18, 30)], "quality", meta, {}),
    ]
    paths = []
    for i, t in enumerate(tables):
        path = tmp_path / "shards" / f"s{i}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        t.to_parquet(path)
        paths.append(path)
    return paths


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as objects with every missing value as None (pandas concat keeps None, Arrow reads NaN)."""
    frame = frame.reset_index(drop=True).astype(object)
    return frame.where(frame.notna(), None)


@pytest.mark.parametrize("bucket_rows", [500_000, 3])
def test_merge_matches_the_in_memory_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket_rows: int) -> None:
    monkeypatch.setattr(engine_merge, "BUCKET_ROWS", bucket_rows)
    files = _shards(tmp_path)
    frames = [pd.read_parquet(f) for f in files]
    expected, dup = one_row_per_key(pd.concat([f for f in frames if len(f)], ignore_index=True))
    got = engine_merge.merge_files(files, tmp_path / "decisions.parquet")
    table = pd.read_parquet(tmp_path / "decisions.parquet")
    assert got["duplicate_keys"] == dup == 4  # k3, k5, k7 and k20
    pd.testing.assert_frame_equal(_nulls(table[expected.columns]), _nulls(expected), check_dtype=False)
    assert table.set_index("key").loc["k5", "reason"] == "blank" and table.set_index("key").loc["k3", "reason"] == "blur"
    assert got["samples"] == len(expected) and got["kept"] == int(expected["keep"].sum())
    pd.testing.assert_frame_equal(engine_merge.counts_frame(got["counts"]), reason_counts(expected).reset_index(drop=True),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(engine_merge.reasons_frame(got["counts"], got["samples"]), reasons_table(expected),
                                  check_dtype=False)


def test_merge_of_nothing_writes_an_empty_table(tmp_path: Path) -> None:
    got = engine_merge.merge_files([], tmp_path / "decisions.parquet")
    table = pd.read_parquet(tmp_path / "decisions.parquet")
    assert got["samples"] == 0 and list(table.columns)[:4] == ["key", "shard", "stage", "keep"]
    assert not list(tmp_path.glob(".merge-*")), "temp buckets left behind"
