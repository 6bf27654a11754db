"""The stage contract: one decision per sample, counted problems, markers, resume, params pinning, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.engine.stages import REGISTRY, resolve, run_stage
from gpic_lab.errors import GpicError, UsageError
from gpic_lab.shards.reader import iter_samples, list_shards

ROOT = Path(__file__).resolve().parents[1]


def wrong_count_stage(samples, params):
    """A broken stage for the contract check: forgets the last sample."""
    from gpic_lab.engine.records import Decision

    return [Decision(s.key, True) for s in samples[:-1]]


def test_license_stage_one_row_per_sample_and_ground_truth(sample_dir: Path, tmp_path: Path) -> None:
    paths = [sample_dir / "raw", sample_dir / "train"]
    summary = run_stage("license", paths, tmp_path / "lic", workers=1, progress=False)
    frame = pd.read_parquet(tmp_path / "lic" / "decisions.parquet")
    keys = [s.key for s in iter_samples(paths, images=False)]
    assert sorted(frame["key"]) == sorted(keys) and frame["key"].is_unique
    assert summary["samples"] == len(keys) and summary["kept"] + summary["dropped"] == len(keys)
    with open(sample_dir / "ground_truth.csv") as fh:
        planted = {r["key"] for r in csv.DictReader(fh) if r["kind"] == "license"}
    dropped = set(frame.loc[~frame["keep"], "key"])
    assert dropped == planted
    assert frame.loc[frame["keep"], "reason"].isna().all() and frame.loc[~frame["keep"], "reason"].notna().all()
    assert set(frame["stage"]) == {"license"} and set(frame["source"]) <= {"flickr", "wikimedia", "other"}
    counts = pd.read_csv(tmp_path / "lic" / "counts.csv")
    assert counts["count"].sum() == len(keys)
    assert set(counts.columns) == {"reason", "license_family", "source", "count"}
    reasons = pd.read_csv(tmp_path / "lic" / "reasons.csv")
    assert reasons["reason"].iloc[0] == "kept" and reasons["count"].sum() == len(keys)
    assert len(list((tmp_path / "lic" / "done").glob("*.done"))) == len(list_shards(paths))


def test_unreadable_members_are_counted_not_skipped(sample_dir: Path, tmp_path: Path) -> None:
    run_stage("schema", [sample_dir / "broken"], tmp_path / "s", workers=2, progress=False)
    frame = pd.read_parquet(tmp_path / "s" / "decisions.parquet")
    with open(sample_dir / "broken" / "expected.csv") as fh:
        expected = list(csv.DictReader(fh))
    tar_codes = {r["code"] for r in expected if r["code"] not in ("schema", "image-decode", "format-mismatch",
                                                                  "dims-mismatch", "too-many-pixels")}
    got = {r.split(":", 1)[1] for r in frame["reason"].dropna() if r.startswith("unreadable:")}
    assert tar_codes <= got
    schema_keys = {r["member"].rsplit(".", 1)[0] for r in expected if r["code"] == "schema"}
    bad_schema = set(frame.loc[frame["reason"] == "schema-invalid", "key"])
    assert schema_keys - {"NOT-A-HEX-KEY"} <= bad_schema
    assert frame["key"].is_unique and not list((tmp_path / "s").rglob("*.tmp"))


def test_resume_recomputes_only_missing_shards(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(4, 3)
    out = tmp_path / "out"
    first = run_stage("license", shards, out, workers=1, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "done").iterdir()}
    (out / "done" / "gpic_train_00002.done").unlink()
    second = run_stage("license", shards, out, workers=1, progress=False)
    assert (first["computed"], second["computed"], second["skipped"]) == (4, 1, 3)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "done").iterdir()}
    assert {n for n in after if after[n] != before[n]} == {"gpic_train_00002.done"}
    assert second["samples"] == 12 and pd.read_parquet(out / "decisions.parquet")["key"].is_unique


def test_params_are_pinned_per_output_dir(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(1, 2)
    run_stage("license", shards, tmp_path / "o", {"check_url": True}, workers=1, progress=False)
    with pytest.raises(UsageError, match="other params"):
        run_stage("license", shards, tmp_path / "o", {"check_url": False}, workers=1, progress=False)
    forced = run_stage("license", shards, tmp_path / "o", {"check_url": False}, workers=1, force=True, progress=False)
    assert forced["computed"] == 1 and forced["params"] == {"check_url": False}


def test_stage_breaking_the_contract_fails_without_marker(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(1, 3)
    with pytest.raises(GpicError, match="2 decisions for 3 samples"):
        run_stage("test_stages:wrong_count_stage", shards, tmp_path / "w", workers=1, progress=False)
    assert not (tmp_path / "w" / "done").exists() and not (tmp_path / "w" / "decisions.parquet").exists()


def test_registry_names_and_unknown_stage() -> None:
    assert {"license", "quality", "vlm-judge", "safety-cpu", "caption-qc"} <= set(REGISTRY)
    assert callable(resolve("license")) and callable(resolve("schema"))
    with pytest.raises(UsageError, match="unknown stage"):
        resolve("no-such-stage")


def test_cli_prints_and_saves_summary(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(2, 2)
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "stage", "license", *map(str, shards), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["kept", "4"]
    assert json.loads((out / "summary.json").read_text())["kept"] == 4
    bad = subprocess.run([*cmd, "-p", "noequals"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr


def test_stage_params_parse_as_json_else_text_and_reject_repeats() -> None:
    from gpic_lab.commands.stage import parse_params

    assert parse_params(["threshold=0.5", "strict=true", "name=abc", "ids=[4, 9]"]) == {
        "threshold": 0.5, "strict": True, "name": "abc", "ids": [4, 9]}
    for bad in (["noequals"], ["=1"], ["a=1", "a=2"], ["a =1", "a=2"]):
        with pytest.raises(UsageError):
            parse_params(bad)


def test_a_shard_named_twice_runs_once(sample_dir: Path, tmp_path: Path) -> None:
    raw = sample_dir / "raw"
    summary = run_stage("license", [raw, raw / "gpic_raw_dups.tar", str(raw) + "/"], tmp_path / "o", workers=1,
                        progress=False)
    assert summary["shards"] == len(list_shards([raw])) and summary["duplicate_keys"] == 0


def test_gpu_stages_default_to_one_local_worker(tiny_shards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shards = tiny_shards(2, 2)
    assert run_stage("license", shards, tmp_path / "cpu", progress=False)["workers"] is None  # one per core
    monkeypatch.setattr("gpic_lab.engine.stages.GPU_STAGES", frozenset({"license"}))
    assert run_stage("license", shards, tmp_path / "gpu", progress=False)["workers"] == 1
