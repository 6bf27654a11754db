"""The committed sample corpus is valid, honest about its provenance, and exactly what the builder makes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gpic_lab.sample.corpus import build, load_sources
from gpic_lab.shards.reader import iter_samples
from gpic_lab.shards.schema import check_meta


def test_rebuild_is_byte_identical(sample_dir: Path, tmp_path: Path) -> None:
    counts = build(tmp_path / "s")
    for rel in counts:
        assert (tmp_path / "s" / rel).read_bytes() == (sample_dir / rel).read_bytes(), rel
    for name in ("captions.json", "ground_truth.csv"):
        assert (tmp_path / "s" / name).read_bytes() == (sample_dir / name).read_bytes(), name


def test_clean_shards_valid_and_keys_are_sha256(sample_dir: Path) -> None:
    import hashlib

    samples = list(iter_samples([sample_dir / d for d in ("train", "val", "test")]))
    assert len(samples) == 13
    for s in samples:
        assert check_meta(s.meta) == []
        assert s.key == hashlib.sha256(s.image).hexdigest()
        img = s.open_image()
        assert (img.width, img.height) == (s.meta["img_width"], s.meta["img_height"])
        assert s.sniffed_format == s.image_ext


def test_captions_cover_all_levels_and_match_records(sample_dir: Path) -> None:
    captions = json.loads((sample_dir / "captions.json").read_text())
    for s in iter_samples([sample_dir / d for d in ("train", "val", "test")], images=False):
        levels = captions[s.key]
        assert set(levels) >= {"tag", "short", "medium", "long"}
        assert levels[s.meta["caption_type"]] == s.meta["caption"]


def test_sources_only_use_stated_permissive_licenses() -> None:
    for src in load_sources():
        assert src["license"] in ("CC0 1.0", "CC BY 2.0", "Public Domain", "No known copyright restrictions")
        assert src["attribution"] and src["provenance_note"]


def test_ground_truth_keys_exist_in_raw(sample_dir: Path) -> None:
    raw = {s.key: s for s in iter_samples(sample_dir / "raw", images=False)}
    clean = {s.key for s in iter_samples([sample_dir / d for d in ("train", "val", "test")], images=False)}
    rows = list(csv.DictReader(open(sample_dir / "ground_truth.csv")))
    kinds = {r["kind"] for r in rows}
    assert kinds >= {"near-dup", "leakage", "quality", "license", "caption-qc", "hallucination", "control"}
    for r in rows:
        assert r["key"] in raw and raw[r["key"]].shard.endswith(r["shard"])
        if r["kind"] in ("near-dup", "leakage"):
            assert r["detail"].removeprefix("of:") in clean
