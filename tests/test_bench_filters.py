"""bench filters: the corpus, the agreement measure and the CLI wiring (timings themselves live in the bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gpic_lab.benches import filters


def test_synthetic_corpus_is_gpic_sized_and_deterministic() -> None:
    import io

    from PIL import Image

    blobs, kinds = filters.synthetic_corpus(12, seed=3)
    again, _ = filters.synthetic_corpus(12, seed=3)
    assert blobs == again and len(kinds) == 12 and "none" in kinds
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as im:
            assert 480 <= max(im.size) <= 800 and im.format in ("JPEG", "PNG")


def test_agreement_compares_reduced_and_full_decisions() -> None:
    blobs, _ = filters.synthetic_corpus(16, seed=1)
    report = filters.agreement(blobs)
    assert 0.0 <= report["agreement"] <= 1.0
    assert sum(report["reasons_full"].values()) == 16
    assert report["agreement"] == 1.0 or report["disagreements"]


def test_judge_timing_is_reported_as_not_measured_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: the judge timing runs for real in `gpic-lab bench filters`")
    assert filters.judge_rate([], None, 4, 4) == {"judge": "not measured (no CUDA on this machine)"}


def test_bench_runs_on_shards_and_reports_the_contract_keys(sample_dir: Path) -> None:
    parser = argparse.ArgumentParser()
    filters.add_arguments(parser)
    args = parser.parse_args([str(sample_dir / "raw" / "gpic_raw_quality.tar"), "--rounds", "1"])
    args.quick = True
    result = filters.run(args)
    assert {"name", "unit", "ours", "baseline", "ratio", "agreement"} <= set(result)
    assert result["name"] == "filters" and result["images"] == 9 and result["corpus"] == "paths"
    assert min(result["ratio_rounds"]) <= result["ratio"] <= max(result["ratio_rounds"])


def test_stage_cli_rejects_bad_filter_params_with_exit_2(sample_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main

    shard = str(sample_dir / "raw" / "gpic_raw_quality.tar")
    assert main(["stage", "quality", shard, "--out", str(tmp_path / "q"), "-p", "blur_thresh=3", "--no-progress",
                 "--workers", "1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["stage", "safety-cpu", shard, "--out", str(tmp_path / "s"), "-p", "threshold=7", "--no-progress",
                 "--workers", "1"]) == 2
