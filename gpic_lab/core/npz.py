"""Reading ``.npz`` files people download (reference statistics, embeddings) without ever unpickling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError


def load_member(data: Any, name: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(data[name])
    except ValueError:  # object arrays (e.g. a pickled key list) need allow_pickle
        with np.load(path, allow_pickle=True) as again:
            return np.asarray(again[name]).astype(str)


def open_npz(path: str | os.PathLike[str]) -> Any:
    """np.load of an npz archive (no pickles); anything else is one UsageError naming the file."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable npz is a usage error
        with open(p, "rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"
        why = str(exc) if zipped else "no zip header"  # numpy's own message for that case talks about pickles
        raise UsageError(f"{p}: not a readable npz file ({why})") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(f"{p}: not a readable npz file (a single .npy array, not an npz archive)")
    return data
