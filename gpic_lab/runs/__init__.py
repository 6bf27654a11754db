"""Headless runs of the notebooks: papermill execution with a strict parameter check, run records, fan-out
over shard ranges, JupyterLab.

What a notebook calls: ``record(metrics)`` (merge into the run's ``metrics.json``), ``run_dir()`` and
``interactive()`` (a person drives the kernel: show widgets and the App), plus ``.widgets`` (threshold sliders).
The runner (``gpic_lab.runs.runner``), parameters (``.params``), fan-out (``.fanout``) and JupyterLab
(``.lab``) are used by ``gpic-lab run``, ``gpic-lab demo`` and ``gpic-lab lab``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpic_lab.fsio import write_json_atomic
from gpic_lab.paths import runs_root


def run_dir(stage: str = "interactive") -> Path:
    """The directory of the run in progress ($GPIC_LAB_RUN_DIR under `gpic-lab run`)."""
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


def interactive() -> bool:
    """True in a Jupyter kernel a person drives; False under `gpic-lab run` (papermill) and outside a kernel.

    Widgets and the App are shown only then; headless runs take their values from the parameters cell."""
    if os.environ.get("GPIC_LAB_RUN_DIR"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
