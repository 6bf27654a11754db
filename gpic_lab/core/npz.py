"""Reading ``.npz`` files people download (reference statistics, embeddings) without ever unpickling.

An ``.npz`` member that is an object array holds pickled Python objects, and unpickling runs whatever code the file's
author chose. So no member is ever unpickled: an object array is a UsageError (exit 2) naming the file and the
member, with how to re-save it as a plain array. Members of the wrong kind (strings where numbers belong) are the
same one-line error, never a traceback.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError

NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
TEXT_KINDS = "US"  # unicode, bytes


class SafeNpz:
    """A read-only npz archive whose members are loaded with ``allow_pickle=False``; used like ``np.load``'s
    NpzFile (``files``, ``in``, ``[name]``, context manager) plus typed readers."""

    def __init__(self, data: Any, path: Path) -> None:
        self._data, self.path = data, path

    @property
    def files(self) -> list[str]:
        return list(self._data.files)

    def __contains__(self, name: object) -> bool:
        return name in self._data.files

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self._data[name])
        except KeyError:
            raise UsageError(f"{self.path}: no member {name!r} (members: {sorted(self._data.files)})") from None
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
                raise UsageError(f"{self.path}: member {name!r} is an object array (pickled Python objects, which "
                                 "could run code when loaded; gpic-lab never unpickles). Re-save it as a plain array, "
                                 f"e.g. np.savez(..., {name}=np.asarray(values, dtype=str))") from None
            raise UsageError(f"{self.path}: member {name!r} is unreadable ({exc})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{self.path}: member {name!r} is unreadable ({exc})") from None

    def numeric(self, name: str) -> np.ndarray:
        """A member that must hold numbers, as float64."""
        arr = self[name]
        if arr.dtype.kind not in NUMERIC_KINDS:
            raise UsageError(f"{self.path}: member {name!r} holds {arr.dtype} values, expected numbers")
        return arr.astype(np.float64)

    def integers(self, name: str) -> np.ndarray:
        """A member that must hold integers (int64)."""
        arr = self[name]
        if arr.dtype.kind not in "iu":
            raise UsageError(f"{self.path}: member {name!r} holds {arr.dtype} values, expected integers")
        return arr.astype(np.int64)

    def text(self, name: str) -> np.ndarray:
        """A member that must hold strings (unicode or bytes), as a unicode array."""
        arr = self[name]
        if arr.dtype.kind not in TEXT_KINDS:
            raise UsageError(f"{self.path}: member {name!r} holds {arr.dtype} values, expected strings")
        try:
            return arr.astype(str)
        except UnicodeDecodeError:
            raise UsageError(f"{self.path}: member {name!r} holds bytes that are not ASCII text") from None

    def close(self) -> None:
        self._data.close()

    def __enter__(self) -> SafeNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_member(data: SafeNpz, name: str, path: Path | None = None) -> np.ndarray:
    """``data[name]`` (kept for callers of the older API; never unpickles)."""
    return data[name]


def open_npz(path: str | os.PathLike[str]) -> SafeNpz:
    """The npz archive at `path` (never unpickled); anything else is one UsageError naming the file."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable npz is a usage error
        try:
            with open(p, "rb") as fh:
                zipped = fh.read(4) == b"PK\x03\x04"
        except OSError:
            zipped = False
        why = str(exc) if zipped else "no zip header"  # numpy's own message for that case talks about pickles
        raise UsageError(f"{p}: not a readable npz file ({why})") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(f"{p}: not a readable npz file (a single .npy array, not an npz archive)")
    return SafeNpz(data, p)
