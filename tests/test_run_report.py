"""Executed notebooks are the report: figures inline (image/png, self-contained plotly), a live timestamped run.log,
a per-cell timeout, and the shipped notebook 01 run headlessly with every figure inline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.plots import count_inline
from gpic_lab.runs.runner import run_notebook

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "notebooks" / "tiny_figure.ipynb"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")


def test_saved_figures_render_inline_and_stay_path_like(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    from gpic_lab import plots

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    saved = plots.save(fig, "t", "line")
    bundle = saved._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"} and Path(os.fspath(saved)).read_bytes()[:4] == b"\x89PNG"
    assert fig.number not in plt.get_fignums()  # closed: an inline backend does not draw it a second time
    page = plots.save(go.Figure(go.Bar(x=[1], y=[1])), "t", "bars")
    html = page.path.read_text()
    assert "src=\"https://cdn.plot.ly" not in html and len(html) > 1_000_000  # plotly.js embedded: works offline
    assert "text/html" in page._repr_mimebundle_() and "src=\"https://cdn" not in page._repr_mimebundle_()["text/html"]


@pytest.mark.notebook
def test_run_writes_inline_figures_and_a_live_timestamped_log() -> None:
    result = run_notebook(TINY, {"n_figures": "2"}, progress="off")
    assert result.status == "done", result.message
    executed = result.run_dir / TINY.name
    assert count_inline(executed) == {"image/png": 2, "text/html": 1}
    log = (result.run_dir / "run.log").read_text().splitlines()
    assert all(STAMP.match(line) for line in log)
    assert any("hello from the setup cell" in line for line in log)
    assert any("Ending Cell" in line for line in log) and "exited with code 0" in log[-1]
    figures = Path(os.environ["GPIC_LAB_FIGURES"]) / "tiny_figure"
    assert sorted(p.name for p in figures.iterdir()) == ["bars.html", "line_0.png", "line_1.png"]


@pytest.mark.notebook
def test_execution_timeout_fails_the_run_and_keeps_the_log() -> None:
    proc = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "run", str(TINY), "-p", "sleep_s=30",
                           "--execution-timeout", "2", "--progress", "off"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    run_dir = next(Path(os.environ["GPIC_LAB_RUNS"]).glob("tiny_figure/*/run.log")).parent
    assert not (run_dir / "DONE").exists()
    assert "timed out" in (run_dir / "run.log").read_text().lower()


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_01_headless_shows_every_figure_inline(tmp_path: Path, sample_dir: Path) -> None:
    source = (ROOT / "notebooks" / "01_explore_shards.py").read_text()
    expected = len(re.findall(r"^plots\.save\(", source, flags=re.M))
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample").symlink_to(sample_dir, target_is_directory=True)
    env = {**os.environ, "GPIC_LAB_DATA": str(data), "GPIC_LAB_STATE": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "run", "notebooks/01_explore_shards.ipynb",
                           "--progress", "on"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "01_explore_shards" in proc.stderr and "cell" in proc.stderr  # the progress bar
    run_dir = next(Path(os.environ["GPIC_LAB_RUNS"]).glob("01_explore_shards/*/DONE")).parent
    executed = run_dir / "01_explore_shards.ipynb"
    assert expected >= 5 and count_inline(executed)["image/png"] == expected
    assert not re.search(r"PosixPath\('[^']*\.(png|html)'\)", executed.read_text())  # figures, not their paths
    assert json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "run.log").stat().st_size > 0
