"""Threshold sliders: moving one re-decides the stored scores; the button writes that table; skipped headless."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


def _safety_dir(tmp_path: Path) -> Path:
    from gpic_lab.engine.records import Decision, decisions_frame
    from gpic_lab.engine.stages import merge

    src = tmp_path / "safety-cpu"
    (src / "shards").mkdir(parents=True)
    rows = [Decision(f"k{i}", i < 6, None if i < 6 else "unsafe-nudity", scores={"nudity": 0.1 * i}) for i in range(10)]
    decisions_frame(rows, "safety-cpu", {}, {}).to_parquet(src / "shards" / "s.parquet")
    merge("safety-cpu", ["s.tar"], src, {"threshold": 0.55}, "x", {})
    return src


def test_slider_redecides_and_button_writes(tmp_path: Path) -> None:
    from gpic_lab.runs.widgets import threshold_explorer

    src = _safety_dir(tmp_path)
    box = threshold_explorer(src, {"threshold": (0.05, 0.95, 0.05)}, out_dir=tmp_path / "out")
    sliders, counts, grid, (button, status) = *box.children[1:4], box.children[4].children
    (slider,) = sliders.children
    assert slider.value == pytest.approx(0.55) and slider.continuous_update is False
    assert "<b>4</b> of 10 dropped" in counts.value and "+0 dropped" in counts.value
    slider.value = 0.25  # k3..k5 now reach the threshold
    assert "<b>7</b> of 10 dropped" in counts.value and "+3 dropped" in counts.value
    assert len(grid.children[0].children) == 3  # one cell per changed image (labels only: no shard here)
    button.click()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["params"]["threshold"] == pytest.approx(0.25) and summary["rethreshold"]["newly_dropped"] == 3
    table = pd.read_parquet(tmp_path / "out" / "decisions.parquet")
    assert int((~table["keep"]).sum()) == 7 and "decisions.parquet" in status.value


def test_interactive_is_false_under_gpic_lab_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpic_lab import runs

    monkeypatch.setenv("GPIC_LAB_RUN_DIR", "/tmp/x")
    assert runs.interactive() is False
    monkeypatch.delenv("GPIC_LAB_RUN_DIR")
    assert runs.interactive() is False  # no kernel in pytest
