"""Atomic file writes: write to a temp file in the same directory, fsync, then rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, exception_line


class OutputError(GpicError, OSError):
    """An output path cannot be created or replaced (a one-line CLI error, still an OSError for callers)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path`, on error delete it.

    Raises OutputError (exit 1, one line naming the path) when the directory or the file cannot be written."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _new_temp(target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write output ({exc.strerror or exc})") from None
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp_path, target)
        except OSError as exc:
            raise OutputError(f"{target}: cannot replace output ({exc.strerror or exc})") from None
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if out_of_space(exc):  # the disk (or quota, or file-size limit) is full: one line, nothing half-written
            raise OutputError(f"{target}: cannot write output ({_why(exc)}); it was not replaced and earlier "
                              "results are kept: free space and rerun to resume") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _new_temp(target: Path) -> Path:
    """An empty, new ``.<name>.<random>.tmp`` beside `target`, created with mode 0666 minus the umask (what any
    new file gets; ``tempfile.mkstemp`` would make every output 0600, unreadable to the group and others)."""
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def out_of_space(exc: BaseException) -> bool:
    """Is this write error a full disk, an exhausted quota or a file-size limit (pyarrow reports some of them
    only in its message)?"""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc)
    return any(os.strerror(code) in text or f"errno {code}]" in text for code in _FULL)


def _why(exc: OSError) -> str:
    code = exc.errno if exc.errno in _FULL else next(c for c in _FULL if os.strerror(c) in str(exc) or
                                                        f"errno {c}]" in str(exc))
    return os.strerror(code)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write bytes."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write pretty, key-sorted JSON (with a trailing newline)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_parquet_atomic(path: str | os.PathLike[str], table: Any) -> Path:
    """Atomically write a pyarrow Table or pandas DataFrame as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None) -> Any:
    """pandas frame of a parquet input; an unreadable file or a missing column is one GpicError naming the file."""
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types (ArrowInvalid, OSError, KeyError...)
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc
