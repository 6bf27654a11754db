"""filter_report: running the filter stages, combining their decisions (one row per key, first stage's reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.filters import report as filter_report


@pytest.fixture(scope="module")
def filtered(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("filters")
    shards = [sample_dir / "raw" / "gpic_raw_quality.tar", sample_dir / "raw" / "gpic_raw_captions.tar"]
    summaries = filter_report.run_filters(shards, out, {"quality": {}, "safety-cpu": {"threshold": 0.5}})
    return out, summaries


def test_each_stage_writes_its_own_directory(filtered: tuple[Path, dict]) -> None:
    out, summaries = filtered
    assert list(summaries) == ["quality", "safety-cpu"]
    for name in summaries:
        assert (out / name / "decisions.parquet").is_file() and (out / name / "counts.csv").is_file()
    table = filter_report.stage_summary(summaries)
    assert table.loc["quality", "samples"] == table.loc["safety-cpu", "samples"] == summaries["quality"]["samples"]


def test_combine_keeps_one_row_per_key_and_the_first_stage_reason(filtered: tuple[Path, dict]) -> None:
    out, summaries = filtered
    combined = filter_report.combine(out)
    assert combined["key"].is_unique and len(combined) == summaries["quality"]["samples"]
    dropped_by_any = (combined["quality_reason"] != "kept") | (combined["safety-cpu_reason"] != "kept")
    assert (combined["keep"] == ~dropped_by_any).all()
    by_quality = combined[combined["quality_reason"] != "kept"]
    assert (by_quality["stage"] == "quality").all() and (by_quality["reason"] == by_quality["quality_reason"]).all()
    only_safety = combined[(combined["quality_reason"] == "kept") & (combined["safety-cpu_reason"] != "kept")]
    assert (only_safety["stage"] == "safety-cpu").all()
    assert {"quality.laplacian_var", "safety-cpu.nudity"} <= set(combined.columns)


def test_planted_outcomes_and_confusion_match_the_ground_truth(filtered: tuple[Path, dict], sample_dir: Path) -> None:
    from gpic_lab.collect import report

    combined = filter_report.combine(filtered[0])
    truth = report.load_truth(sample_dir / "ground_truth.csv", kind="quality")
    outcomes = filter_report.planted_outcomes(combined, truth)
    assert len(outcomes) == 7 and (outcomes["planted"] == outcomes["reason"]).all()
    table = report.confusion(combined, truth)
    assert all(table.loc[label, label] >= 1 for label in set(truth))


def test_bad_inputs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown filter stage"):
        filter_report.run_filters([], tmp_path, {"aesthetics": {}})
    with pytest.raises(UsageError, match="no filter stage outputs"):
        filter_report.combine(tmp_path)


def test_score_plot_draws_every_panel(filtered: tuple[Path, dict]) -> None:
    fig = filter_report.plot_quality_scores(filter_report.combine(filtered[0]))
    assert len(fig.axes) == len(filter_report.THRESHOLD_PANELS)
