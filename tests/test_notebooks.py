"""The notebook chain (`gpic-lab demo`) runs end to end on the sample corpus, then skips done runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.notebook
def test_demo_chain_runs_every_notebook_then_skips(tmp_path: Path, sample_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample").symlink_to(sample_dir, target_is_directory=True)
    env = {**os.environ, "GPIC_LAB_DATA": str(data), "GPIC_LAB_STATE": str(tmp_path / "state"),
           "FIFTYONE_DATABASE_DIR": str(tmp_path / "state" / "fiftyone" / "db")}
    demo = [sys.executable, "-m", "gpic_lab.commands.cli", "demo"]
    first = subprocess.run(demo, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout + first.stderr[-4000:]
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    runs = Path(os.environ["GPIC_LAB_RUNS"])
    figures = Path(os.environ["GPIC_LAB_FIGURES"])
    for stem in notebooks:
        done = list((runs / stem).glob("*/DONE"))
        assert len(done) == 1, f"{stem}: no DONE run record"
        run = done[0].parent
        assert (run / f"{stem}.ipynb").is_file()
        assert json.loads((run / "metrics.json").read_text()), f"{stem}: recorded no metrics"
        assert {"python", "versions", "git_commit"} <= set(json.loads((run / "env.json").read_text()))
    assert list((figures / "01_explore_shards").glob("*.png")), "notebook 01 saved no figures"
    assert not (sample_dir / "interim").exists()
    second = subprocess.run(demo, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"0 done, {len(notebooks)} skipped, 0 failed" in second.stdout


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize(("notebook", "spec"), [("03_quality_safety_filter", "shard_range=0:2:1"),
                                                ("04_dedup", "shard_range=0:2:1"),
                                                ("05_caption", "shard_range=0:2:1"),
                                                ("07_eval_fd_dinov2", "shard_range=0:1:1")])
def test_shipped_notebooks_fan_out_over_shard_ranges(tmp_path: Path, sample_dir: Path, notebook: str,
                                                     spec: str) -> None:
    """The GPU-box fan-out on the notebooks that take `shard_range`, each on a fresh data root: every range
    finishes and the merged metrics table is written."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample").symlink_to(sample_dir, target_is_directory=True)
    env = {**os.environ, "GPIC_LAB_DATA": str(data), "GPIC_LAB_STATE": str(tmp_path / "state"),
           "GPIC_LAB_RUNS": str(tmp_path / "runs"), "GPIC_LAB_FIGURES": str(tmp_path / "figures")}
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "run", f"notebooks/{notebook}.ipynb", "--fan-out", spec,
           "--jobs", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    tables = list((tmp_path / "runs" / notebook).glob("fanout-*/metrics.parquet"))
    assert len(tables) == 1
    import pandas as pd

    merged = pd.read_parquet(tables[0])
    assert merged["done"].all() and len(merged) == int(spec.split(":")[1])
