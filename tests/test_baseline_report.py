"""Notebook 08's tables: Table 3 beside GPIC's row, the cost projection, the FLOPs behind GPIC's 40 hours."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gpic_lab.baseline import config, report  # noqa: E402


def test_table3_puts_gpic_row_beside_ours() -> None:
    ours = {6.25: {"fd": 80.0, "precision": 0.9, "recall": 0.7, "density": 1.0, "coverage": 0.9, "n_samples": 50000},
            2.0: {"fd": 120.0, "precision": 0.8, "recall": 0.6, "density": 0.9, "coverage": 0.8, "n_samples": 50000}}
    table = report.table3(ours)
    assert list(table["cfg"]) == [2.0, 6.25]
    row = table.set_index("cfg").loc[6.25]
    assert row["fd (ours)"] == 80.0 and row["fd (GPIC)"] == 76.25 and row["coverage (GPIC)"] == 0.908
    assert math.isnan(table.set_index("cfg").loc[2.0]["fd (GPIC)"])  # GPIC reports 1.75 / 4.0 / 6.25 only


def test_cost_projection_and_gpic_budget(tmp_path: Path) -> None:
    assert config.gpic_images_per_s_per_gpu() == pytest.approx(86.8056, abs=1e-3)
    assert config.epoch_hours(config.gpic_images_per_s_per_gpu()) == pytest.approx(40.0)
    log = tmp_path / "train_log.csv"
    log.write_text("step,loss,images_per_s,step_s,gpu_busy\n10,1.0,5.0,2.0,0.5\n20,0.9,50.0,0.2,0.9\n"
                   "30,0.8,40.0,0.25,0.8\n")
    measured = report.throughput(log)  # the first row (start-up) is left out
    assert measured["images_per_s"] == 45.0 and measured["step_s"] == pytest.approx(0.225)
    cost = report.cost_table("tiny", measured, "test CPU", gpus=8, date="2026-12-02")
    hours = "hours_1_epoch_full_8_devices"
    assert cost.loc[0, hours] == pytest.approx(100e6 / (45.0 * 8) / 3600)
    assert cost.loc[1, hours] == pytest.approx(40.0) and 0.19 < cost.loc[1, "implied_mfu_h100"] < 0.21
    big = config.get_config("gpic-1.1b")
    assert 2.2e12 < config.train_flops_per_image(big) < 2.4e12 and config.matmul_flops_per_image(big) > 4.5e11
