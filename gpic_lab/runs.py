"""Notebook run records. `record(metrics)` is called by every notebook's last cell; it merges the metrics into
metrics.json of the current run directory ($GPIC_LAB_RUN_DIR, set by `gpic-lab run`), or of
papermill_runs/<stage>/interactive/ when a notebook is run by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpic_lab.fsio import write_json_atomic
from gpic_lab.paths import runs_root


def run_dir(stage: str = "interactive") -> Path:
    """The directory of the run in progress."""
    env = os.environ.get("GPIC_LAB_RUN_DIR")
    path = Path(env) if env else runs_root() / stage / "interactive"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(metrics: dict[str, Any], stage: str = "interactive") -> Path:
    """Merge `metrics` (JSON-serialisable) into the run's metrics.json and return its path."""
    target = run_dir(stage) / "metrics.json"
    current = json.loads(target.read_text()) if target.exists() else {}
    current.update(metrics)
    return write_json_atomic(target, current)
