"""Atomic training checkpoints: RUN/checkpoints/step_NNNNNNNN.pt (model, EMA, optimizer, loader position, step
counters, config, settings) and RUN/checkpoints/latest.json naming the newest complete one.

A checkpoint file appears only once fully written and fsynced (temp file + rename); `latest.json` is replaced
after it, so a kill at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

log = logging.getLogger("gpic_lab.baseline")
FORMAT = 1


def ckpt_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save(run_dir: str | Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` (must hold 'step') as the newest checkpoint; keep the `keep` newest files."""
    import torch

    from gpic_lab.fsio import atomic_path, write_json_atomic

    folder = ckpt_dir(run_dir)
    path = folder / f"step_{int(state['step']):08d}.pt"
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    write_json_atomic(folder / "latest.json", {"file": path.name, "step": int(state["step"])})
    for old in sorted(folder.glob("step_*.pt"))[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory (or a checkpoint file itself), None if there is none."""
    p = Path(run_dir)
    if p.is_file():
        return p
    pointer = ckpt_dir(p) / "latest.json"
    if pointer.is_file():
        target = ckpt_dir(p) / json.loads(pointer.read_text())["file"]
        if target.is_file():
            return target
    files = sorted(ckpt_dir(p).glob("step_*.pt"))
    return files[-1] if files else None


def load(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's state (UsageError for a file that is not one of ours)."""
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=True)  # ranks share pages; never unpickles
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a usage error here
        raise UsageError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise UsageError(f"{path}: not a gpic-lab baseline checkpoint")
    return state


def find(run_or_file: str | Path) -> Path:
    """The checkpoint `gpic-lab generate --ckpt` means: a file, or the latest one of a run directory."""
    path = latest(run_or_file)
    if path is None:
        raise UsageError(f"{run_or_file}: no checkpoint (expected a .pt file or a run directory with checkpoints/)")
    return path
