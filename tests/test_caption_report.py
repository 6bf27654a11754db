"""Notebook helpers of captioning/packaging (gpic_lab.caption.report, gpic_lab.pack.report), and caption-qc run
through the stage engine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.caption import report as cr
from gpic_lab.caption.levels import caption_type_for
from gpic_lab.errors import UsageError
from gpic_lab.pack import report as pr


def test_planted_check_and_honest_levels(sample_dir: Path) -> None:
    from gpic_lab.caption.qc import qc_rows, sample_rows
    from gpic_lab.shards.reader import iter_samples

    rows = qc_rows(sample_rows(iter_samples([sample_dir / "raw" / "gpic_raw_captions.tar"])))
    planted = cr.planted_check(rows, sample_dir / "ground_truth.csv")
    assert len(planted) >= 10 and planted["caught"].all()
    assert (planted["expected"] == "keep").sum() == 1
    wrong = [{**r, "reasons": "length"} if r["key"].startswith(planted["key"][0]) else r for r in rows]
    assert not cr.planted_check(wrong, sample_dir / "ground_truth.csv")["caught"].iloc[0]
    honest = cr.qc_levels(json.loads((sample_dir / "captions.json").read_text()))
    assert len(honest) == 4 * 15 and all(r["keep"] or r["not_visible"] for r in honest)  # NOT VISIBLE.: never packed


def test_type_mix_and_types_match(sample_dir: Path) -> None:
    mix = cr.type_mix([sample_dir / "train"])
    assert list(mix["shard"]) == ["gpic_train_00000.tar", "gpic_train_00001.tar"]
    assert (mix[["tag", "short", "medium", "long"]].sum(axis=1) == mix["n"]).all()
    assert cr.max_deviation_sigma({"tag": 1, "short": 45, "medium": 45, "long": 9}, 100) == 0.0
    assert cr.max_deviation_sigma({"short": 100}, 100) > 10
    frame = pd.DataFrame({"key": ["a" * 64], "caption_type": [caption_type_for("a" * 64)]})
    assert cr.types_match(frame) and not cr.types_match(frame.assign(caption_type="bogus"))
    assert cr.printable("ok\x15\ufffd") == "ok\\x15?"


def test_caption_qc_through_the_stage_engine(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.engine.stages import run_stage

    run_stage("caption-qc", [str(sample_dir / "raw" / "gpic_raw_captions.tar")], tmp_path / "qc", workers=1,
              progress=False)
    frame = pd.read_parquet(tmp_path / "qc" / "decisions.parquet")
    truth = pd.read_csv(sample_dir / "ground_truth.csv").query("kind == 'caption-qc'")
    got = frame.set_index("key")
    for t in truth.itertuples(index=False):
        assert not got.loc[t.key, "keep"], t.key
    assert set(frame["stage"]) == {"caption-qc"}


def test_find_decisions_missing_stages_and_pack_tables(sample_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from gpic_lab.caption.qc import run_qc
    from gpic_lab.pack.packer import pack

    monkeypatch.setenv("GPIC_LAB_DATA", str(tmp_path))
    files, found = pr.find_decisions("auto")
    assert files == [] and found.empty and pr.missing_stages(found) == list(pr.EXPECTED_STAGES)
    run_qc([str(sample_dir / "raw" / "gpic_raw_captions.tar")], str(tmp_path / "interim" / "05_caption"))
    files, found = pr.find_decisions("auto")
    assert len(files) == 1 and found["stages"].iloc[0] == "caption-qc" and found["dropped"].iloc[0] >= 10
    assert "caption-qc" not in pr.missing_stages(found)
    with pytest.raises(UsageError, match="no decisions.parquet"):
        pr.find_decisions("interim/nope")
    manifest = pack([str(sample_dir / "train"), str(sample_dir / "raw" / "gpic_raw_captions.tar"), *files],
                    tmp_path / "packed", 3, 1, 1)
    tiers = pr.tiers_table(manifest).set_index("set")
    assert tiers.loc["full", "samples"] == tiers.loc["train", "samples"] and tiers.loc["nano", "shards"] == 1
    sheet = json.loads((tmp_path / "packed" / "datasheet.json").read_text())
    drops = pr.drops_table(sheet)
    assert set(drops["stage"]) == {"caption-qc"} and drops["samples"].sum() == sheet["excluded"]
    assert pr.compare_manifests(manifest, manifest)["identical"].all()
    assert pr.balance_figure(manifest) is not None
