"""License audit against the sample corpus and its ground truth."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gpic_lab.audits import license as audit
from gpic_lab.errors import UsageError


def _truth(sample_dir: Path, kind: str) -> dict[str, dict[str, str]]:
    with open(sample_dir / "ground_truth.csv", newline="") as fh:
        return {r["key"]: r for r in csv.DictReader(fh) if r["kind"] == kind}


def test_raw_plants_are_found(sample_dir: Path) -> None:
    frame = audit.license_table([sample_dir / "raw"])
    truth = _truth(sample_dir, "license")
    not_ok = {k for k, r in truth.items() if r["label"] in ("license-not-permissive", "license-unknown",
                                                           "license-url-mismatch")}
    assert set(audit.leaks(frame)["key"]) == not_ok
    fam = dict(zip(frame["key"], frame["license_family"], strict=True))
    for key, row in truth.items():
        if row["label"] in ("license-not-permissive", "license-unknown"):
            assert fam[key] == row["detail"], row
    problems = audit.attribution_problems(frame).set_index("key")["problems"].to_dict()
    expected = {k: r["label"] for k, r in truth.items() if r["label"] in ("attribution-missing", "license-url-mismatch")}
    assert {k: problems.get(k) for k in expected} == expected
    controls = {r["key"] for r in _truth(sample_dir, "control").values() if r["detail"].startswith("license:")}
    assert controls and not controls & set(audit.leaks(frame)["key"]) and not controls & set(problems)


def test_packaged_clean_splits_have_zero_leaks(sample_dir: Path, tmp_path: Path) -> None:
    frame = audit.license_table([sample_dir / d for d in ("train", "val", "test")])
    s = audit.summary(frame)
    assert s["samples"] == 13 and s["leaks"] == 0 and s["attribution_problems"] == 0
    out = audit.attribution_report(frame, tmp_path / "attribution.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 13 and all(r["attribution"] and r["license"] and r["spdx"] for r in rows)
    dist = audit.distribution(frame)
    assert dist["samples"].sum() == (frame["tiers"].str.count(",") + 1).sum()  # one row per tier membership
    by = audit.distribution(frame, by=("license_family",))
    assert by["samples"].sum() == 13
    assert abs(by["megapixels"].sum() - frame["pixels"].sum() / 1e6) < 0.01
    assert audit.by_year(frame).to_numpy().sum() == 13
    with pytest.raises(UsageError):
        audit.distribution(frame, by=("nope",))


def test_report_leaves_out_non_permissive(sample_dir: Path, tmp_path: Path) -> None:
    frame = audit.license_table([sample_dir / "raw"])
    out = audit.attribution_report(frame, tmp_path / "a.csv")
    with open(out, newline="") as fh:
        keys = {r["key"] for r in csv.DictReader(fh)}
    assert keys and not keys & set(audit.leaks(frame)["key"])
    fig = audit.family_figure(frame, "raw")
    assert len(fig.axes) >= 2
    assert audit.sunburst(frame, "raw").data


def test_real_pack_output_has_zero_leaks_and_drops_the_plants(sample_dir: Path, tmp_path: Path) -> None:
    """Raw plants + license-stage decisions through `pack`: the packaged shards audit clean."""
    from gpic_lab.engine import stages
    from gpic_lab.pack import packer as pack

    stages.run_stage("license", [str(sample_dir / "raw")], tmp_path / "license", workers=1, progress=False)
    sources = [sample_dir / d for d in ("train", "val", "test", "raw")]
    pack.pack([*sources, tmp_path / "license"], tmp_path / "packed", n_shards=2, n_val=3, n_test=3, seed=0)
    raw_leaks = set(audit.leaks(audit.license_table([sample_dir / "raw"]))["key"])
    packed = audit.license_table([tmp_path / "packed"])
    assert raw_leaks and len(packed) > 13  # raw records that passed the license stage were packed too
    assert audit.summary(packed)["leaks"] == 0 and not raw_leaks & set(packed["key"])
    assert set(packed["split_dir"]) == {"train", "val", "test"}


def test_packaged_paths_auto_prefers_the_pack_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIC_LAB_DATA", str(tmp_path))
    assert audit.packaged_paths("auto") == [tmp_path / p for p in audit.CLEAN_SAMPLE_SPLITS]
    packed = tmp_path / "interim" / "06_pack" / "packed"
    packed.mkdir(parents=True)
    assert audit.packaged_paths("auto") != [packed]  # no manifest yet: an interrupted pack is not used
    (packed / "manifest.json").write_text("{}")
    assert audit.packaged_paths("auto") == [packed]
    assert audit.packaged_paths("a/x.tar, b") == [tmp_path / "a/x.tar", tmp_path / "b"]
