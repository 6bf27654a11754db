"""Shard lists as WebDataset/fsspec users write them (brace ranges, globs, URL globs) and worker slices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.shards.reader import list_shards
from gpic_lab.shards.sources import expand, parse_range, range_tag, select, split_list

CLI = [sys.executable, "-m", "gpic_lab.commands.cli"]


def test_brace_ranges_and_globs_expand_in_order(tiny_shards, tmp_path: Path) -> None:
    shards = [str(p) for p in tiny_shards(n_shards=3, per_shard=1)]
    assert list_shards([f"{tmp_path}/gpic_train_{{00000..00001}}.tar"]) == shards[:2]
    assert list_shards([f"{tmp_path}/gpic_train_{{00002,00000}}.tar"]) == [shards[2], shards[0]]
    assert list_shards([f"{tmp_path}/gpic_train_*.tar"]) == shards
    assert list_shards([f"{tmp_path}/**/*.tar"]) == shards
    assert list_shards([str(tmp_path)]) == shards
    with pytest.raises(UsageError, match="no such file"):
        list_shards([f"{tmp_path}/gpic_train_{{00000..00003}}.tar"])  # 00003 does not exist
    with pytest.raises(UsageError, match="matches"):
        list_shards([f"{tmp_path}/nothing_*.tar"])
    with pytest.raises(UsageError):
        list_shards([f"{tmp_path}/gpic_train_{{00000..00001.tar"])  # unbalanced


def test_a_path_that_exists_as_written_is_not_expanded(tmp_path: Path) -> None:
    odd = tmp_path / "odd_{1..2}[x].tar"
    odd.write_bytes(b"")
    assert expand([str(odd)]) == [str(odd)]


def test_fsspec_url_globs_and_directories_are_listed() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("gpic_train_00000.tar", "gpic_train_00001.tar", "notes.txt", "sub/gpic_train_00002.tar"):
        fs.pipe(f"/gpicsrc/{name}", b"x")
    try:
        listed = expand(["memory://gpicsrc/gpic_train_*.tar"])  # fsspec spells the memory root memory:///
        assert [u.rsplit("/", 1)[1] for u in listed] == ["gpic_train_00000.tar", "gpic_train_00001.tar"]
        assert all(u.startswith("memory://") and fsspec.open(u).open().read() == b"x" for u in listed)
        under = expand(["memory://gpicsrc/"])
        assert len(under) == 3 and under[-1].endswith("/gpicsrc/sub/gpic_train_00002.tar")
        assert expand(["memory://gpicsrc/gpic_train_{00000..00001}.tar"]) == [
            "memory://gpicsrc/gpic_train_00000.tar", "memory://gpicsrc/gpic_train_00001.tar"]
        with pytest.raises(UsageError, match="no .tar"):
            expand(["memory://gpicsrc/none_*.tar"])
    finally:
        fs.rm("/gpicsrc", recursive=True)


def test_http_urls_are_kept_and_cannot_be_globbed() -> None:
    assert expand(["http://127.0.0.1:1/a_{0..1}.tar"]) == ["http://127.0.0.1:1/a_0.tar", "http://127.0.0.1:1/a_1.tar"]
    with pytest.raises(UsageError, match="brace range"):
        expand(["https://127.0.0.1:1/a_*.tar"])


def test_comma_lists_keep_commas_inside_braces() -> None:
    assert split_list("sample/train, x_{a,b}.tar,,y") == ["sample/train", "x_{a,b}.tar", "y"]


@pytest.mark.parametrize("n", [1, 5, 16, 17])
def test_ranges_and_ranks_cover_every_shard_once(n: int) -> None:
    shards = [f"s/gpic_train_{i:05d}.tar" for i in reversed(range(n))]  # slices are over the sorted list
    for world in (1, 2, 3, 8):
        parts = [select(shards, rank=r, world_size=world) for r in range(world)]
        assert [s for p in parts for s in p] == sorted(shards)
    step = 4
    parts = [select(shards, f"{a}:{a + step}") for a in range(0, n, step)]
    assert [s for p in parts for s in p] == sorted(shards)
    assert select(shards) == shards


def test_bad_ranges_are_usage_errors() -> None:
    for bad in ("1", "a:b", "5:5", "-1:3", "1:2:3"):
        with pytest.raises(UsageError):
            parse_range(bad)
    with pytest.raises(UsageError, match="selects no shard"):
        select(["a.tar"], "1:2")
    with pytest.raises(UsageError, match="together"):
        select(["a.tar"], rank=0)
    with pytest.raises(UsageError, match="either"):
        select(["a.tar"], "0:1", rank=0, world_size=1)
    with pytest.raises(UsageError):
        select(["a.tar"], rank=2, world_size=2)
    assert range_tag("0:100") == "000000-000100" and range_tag(rank=1, world_size=8) == "rank-1-of-8"


def test_catalog_takes_a_brace_range_and_a_glob(tiny_shards, tmp_path: Path) -> None:
    import pandas as pd

    shards = tiny_shards(n_shards=2, per_shard=2)
    for pattern, name in ((f"{tmp_path}/gpic_train_{{00000..00001}}.tar", "brace"), (f"{tmp_path}/gpic_*.tar", "glob")):
        out = tmp_path / f"{name}.parquet"
        proc = subprocess.run([*CLI, "catalog", pattern, "-o", str(out)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert sorted(pd.read_parquet(out)["shard"].unique()) == [str(p) for p in shards]
