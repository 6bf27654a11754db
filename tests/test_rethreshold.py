"""Re-thresholding from stored scores gives what rerunning the stage with the new thresholds gives."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.engine.rethreshold import load_stage, recompute, rethreshold
from gpic_lab.engine.stages import run_stage
from gpic_lab.errors import UsageError

SHARDS = ("raw", "train", "val", "test")


def _decided(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("key")[["keep", "reason"]].assign(reason=lambda f: f["reason"].fillna("kept"))


def _check_against_rerun(stage: str, base: dict, change: dict, shards: list[Path], tmp_path: Path) -> dict:
    """Rethreshold base -> base|change, and rerun the stage with base|change: every decided row must agree."""
    src = tmp_path / f"{stage}-base"
    run_stage(stage, shards, src, base, workers=1, progress=False)
    tag = "-".join(f"{k}{v}" for k, v in change.items())
    summary = rethreshold(src, tmp_path / f"{stage}-re-{tag}", change)
    rerun = tmp_path / f"{stage}-rerun-{tag}"
    run_stage(stage, shards, rerun, {**base, **change}, workers=1, progress=False)
    new = pd.read_parquet(tmp_path / f"{stage}-re-{tag}" / "decisions.parquet")
    truth = _decided(pd.read_parquet(rerun / "decisions.parquet"))
    decided = new[~new["rethreshold_undecided"]]
    assert len(decided) >= 0.8 * len(new), summary
    pd.testing.assert_frame_equal(_decided(decided), truth.loc[decided["key"]], check_names=False)
    assert summary["params"] == {**summary["params"], **change}
    assert summary["rethreshold"]["changed_params"] == change
    assert summary["rethreshold"]["from"] == str(src.resolve())
    return summary


@pytest.mark.slow
def test_quality_rethreshold_matches_a_rerun(sample_dir: Path, tmp_path: Path) -> None:
    shards = [sample_dir / d for d in SHARDS]
    base = {"min_longest_side": 256, "max_aspect": 5.0}
    src = tmp_path / "quality-base"
    run_stage("quality", shards, src, base, workers=1, progress=False)
    frame, stage, params = load_stage(src)
    same, info = recompute(frame, stage, {}, params, src)  # the stage's own thresholds: nothing changes
    assert info["changed"] == info["reason_changed"] == info["undecided"] == 0 and stage == "quality"
    assert (same["keep"] == frame["keep"]).all()
    changes = [{"min_longest_side": 400}, {"max_aspect": 1.4}, {"exposure_share": 0.6}, {"blank_std": 2.0},
               {"blur_laplacian_var": 20.0}, {"blur_edge_sharpness": 0.4}, {"max_aspect": 50.0},
               {"blur_laplacian_var": 400.0}]
    moved = 0
    for change in changes:
        summary = _check_against_rerun("quality", base, change, shards, tmp_path)
        moved += summary["rethreshold"]["changed"]
    assert moved > 0, "no threshold changed any decision: the test would not see a wrong rule"
    # looser thresholds reach images the stage never measured: an image dropped for its aspect has no pixel
    # statistics, images above the old Laplacian threshold have no edge statistics; they are counted undecided
    for name in ("max_aspect50.0", "blur_laplacian_var400.0"):
        loose = json.loads((tmp_path / f"quality-re-{name}" / "summary.json").read_text())
        assert loose["rethreshold"]["undecided"] > 0, name


@pytest.mark.slow
def test_safety_rethreshold_matches_a_rerun(sample_dir: Path, tmp_path: Path) -> None:
    shards = [sample_dir / d for d in ("raw", "train")]
    for threshold in (0.2, 0.6):
        summary = _check_against_rerun("safety-cpu", {"threshold": 0.4}, {"threshold": threshold}, shards, tmp_path)
        assert summary["rethreshold"]["undecided"] == 0 and summary["params"]["threshold"] == threshold


def test_dedup_rethreshold_from_stored_pairs(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.dedup import embed, embed_cache
    from gpic_lab.dedup import rule as dedup
    from gpic_lab.dedup.rethreshold import pair_table, write_pairs

    shards = [str(sample_dir / "train"), str(sample_dir / "raw" / "gpic_raw_dups.tar")]
    out, cache = tmp_path / "dedup", tmp_path / "cache"
    dedup.run_dedup(shards, out / "decisions.parquet", "phash", cache_dir=str(cache))
    emb, _ = embed_cache.embed_shards(shards, embed.load_encoder("phash"), cache)
    pairs, floor = pair_table(emb)
    write_pairs(out, pairs, floor)
    frame, stage, params = load_stage(out)
    same, info = recompute(frame, stage, {}, params, out)
    assert stage == "dedup" and info["changed"] == 0
    assert (same["kept_key"].fillna("") == frame["kept_key"].fillna("")).all()
    moved = 0
    for i, change in enumerate(({"near_dup": 0.95}, {"link": 0.7, "near_dup": 0.75}, {"cluster_min": 2})):
        summary = rethreshold(out, tmp_path / f"re{i}", change)
        moved += summary["rethreshold"]["changed"]
        dedup.run_dedup(shards, tmp_path / f"rerun{i}" / "decisions.parquet", "phash",
                        rule=dedup.default_rule("phash", **change), cache_dir=str(cache))
        new = pd.read_parquet(tmp_path / f"re{i}" / "decisions.parquet")
        truth = pd.read_parquet(tmp_path / f"rerun{i}" / "decisions.parquet")
        pd.testing.assert_frame_equal(_decided(new), _decided(truth).loc[new["key"]], check_names=False)
        kept = truth.set_index("key").loc[new["key"], "kept_key"].fillna("")
        assert (new.set_index("key")["kept_key"].fillna("") == kept).all(), change
    assert moved > 0
    write_pairs(out, pairs[pairs["similarity"] > 0.5], 0.5)  # pairs stored above 0.5 only
    with pytest.raises(UsageError, match="below 0.5"):
        rethreshold(out, tmp_path / "low", {"link": 0.3})


def test_cli_rethreshold_and_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main
    from gpic_lab.engine.records import Decision, decisions_frame
    from gpic_lab.engine.stages import merge

    src = tmp_path / "safety"
    (src / "shards").mkdir(parents=True)
    rows = [Decision(f"k{i}", i < 3, None if i < 3 else "unsafe-nudity", scores={"nudity": 0.1 * i})
            for i in range(6)] + [Decision("bad", False, "undecodable", scores={"nudity": float("nan")})]
    decisions_frame(rows, "safety-cpu", {}, {}).to_parquet(src / "shards" / "s.parquet")
    merge("safety-cpu", ["s.tar"], src, {"threshold": 0.3}, "x", {})
    assert main(["rethreshold", str(src), "--out", str(tmp_path / "re"), "-p", "threshold=0.45"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["params"]["threshold"] == 0.45 and summary["rethreshold"]["newly_kept"] == 2
    assert summary["rethreshold"]["source_params"] == {"threshold": 0.3}
    table = pd.read_parquet(tmp_path / "re" / "decisions.parquet").set_index("key")
    assert table.loc["bad", "reason"] == "undecodable" and table.loc["k5", "reason"] == "unsafe-nudity"
    assert table.loc["k3", "keep"] and table.loc["k3", "prev_reason"] == "unsafe-nudity"
    for bad in (["-p", "dark_level=10"], ["-p", "threshold=2"], ["--out", str(src)]):
        argv = ["rethreshold", str(src), *(bad if "--out" in bad else ["--out", str(tmp_path / "x"), *bad])]
        assert main(argv) == 2, bad
    assert main(["rethreshold", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err
