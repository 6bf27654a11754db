"""One tier rule (Nano/Lite/Full = first 1 %/10 %/100 % of train shards) used alike by pack, the loader, the
record schema and the sample corpus; pack and loader agree for 2, 10 and 8,000 shards."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from gpic_lab.loader.stream import tier_shards
from gpic_lab.pack.packer import pack
from gpic_lab.shards.reader import iter_samples, list_shards
from gpic_lab.shards.schema import check_meta, new_record
from gpic_lab.shards.tiers import TIERS, is_nested, tier_shard_counts, tiers_of_shard
from gpic_lab.shards.writer import write_shard


def test_the_rule() -> None:
    assert tier_shard_counts(8000) == {"nano": 80, "lite": 800, "full": 8000}  # GPIC's release
    assert tier_shard_counts(10) == {"nano": 1, "lite": 1, "full": 10}
    assert tier_shard_counts(2) == {"nano": 1, "lite": 1, "full": 2}
    assert tier_shard_counts(150) == {"nano": 2, "lite": 15, "full": 150}  # 1.5 rounds up
    assert tier_shard_counts(0) == {"nano": 0, "lite": 0, "full": 0}
    assert tiers_of_shard(0, 8000) == ["nano", "lite", "full"] and tiers_of_shard(79, 8000) == ["nano", "lite", "full"]
    assert tiers_of_shard(80, 8000) == ["lite", "full"] and tiers_of_shard(800, 8000) == ["full"]
    assert tiers_of_shard(1, 2) == ["full"]
    with pytest.raises(ValueError):
        tiers_of_shard(2, 2)


def test_schema_accepts_only_nested_tier_lists() -> None:
    base = new_record("a" * 64, 10, 10, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "x", "t",
                      "short", "A caption.")
    for split in ([], ["full"], ["lite", "full"], ["nano", "lite", "full"]):
        assert is_nested(split) and check_meta({**base, "split": split}) == []
    for split in (["nano"], ["nano", "full"], ["full", "lite"]):
        assert not is_nested(split) and "nested tier list" in check_meta({**base, "split": split})[0]


def test_sample_corpus_follows_the_rule(sample_dir: Path) -> None:
    shards = list_shards([sample_dir / "train"])
    for i, shard in enumerate(shards):
        assert {tuple(s.meta["split"]) for s in iter_samples([shard], images=False)} == {tuple(tiers_of_shard(i, 2))}
    assert tier_shards([str(s) for s in shards], "nano") == [str(shards[0])]


def _source(tmp_path: Path, n: int) -> Path:
    """One source shard of n tiny PNG samples (distinct bytes, so distinct keys)."""
    from PIL import Image

    entries = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (i % 256, (i // 256) % 256, 7)).save(buf, "PNG")
        data = buf.getvalue() + i.to_bytes(4, "big")
        key = hashlib.sha256(data).hexdigest()
        entries.append((key, new_record(key, 4, 4, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/",
                                        "x", "2026-01-01T00:00:00Z", "short", "A tiny square.", []), data, "png"))
    path = tmp_path / "src" / "src_00000.tar"
    write_shard(path, entries)
    return path


def _pack_and_compare(tmp_path: Path, n: int) -> None:
    out = tmp_path / "pack"
    manifest = pack([_source(tmp_path, n + 2)], out, n, 1, 1)
    train = [str(p) for p in list_shards([out / "train"])]
    assert len(train) == n
    counts = tier_shard_counts(n)
    everything = train + [str(p) for p in list_shards([out / "val", out / "test"])]
    for tier in TIERS:
        expected = train[: counts[tier]]
        assert [str(out / f) for f in manifest["tiers"][tier]["files"]] == expected
        assert tier_shards(everything, tier) == expected  # from the manifest beside the shards
    for i in (0, counts["nano"] - 1, counts["nano"], counts["lite"], n - 1):
        if 0 <= i < n:
            split = next(iter_samples([train[i]], images=False)).meta["split"]
            assert split == tiers_of_shard(i, n)
    (out / "manifest.json").rename(out / "manifest.moved.json")
    for tier in TIERS:  # without a manifest: from the records' split lists
        assert tier_shards(everything, tier) == train[: counts[tier]]
    assert tier_shards(everything, "full", manifest=out / "manifest.moved.json") == train


@pytest.mark.parametrize("n", [2, 10])
def test_pack_and_loader_agree(tmp_path: Path, n: int) -> None:
    _pack_and_compare(tmp_path, n)


@pytest.mark.slow
def test_pack_and_loader_agree_on_gpic_8000_shards(tmp_path: Path) -> None:
    """GPIC's own layout: 8,000 train shards -> Nano 80, Lite 800 (about 25 s: 8,002 tars are written)."""
    _pack_and_compare(tmp_path, 8000)
