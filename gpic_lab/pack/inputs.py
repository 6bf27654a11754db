"""Strict reading of the decision tables pack applies.

A decisions table must say what it means: ``key`` strings, ``stage`` non-empty strings, ``keep`` booleans without
nulls, ``reason`` strings or nulls. Anything else is a UsageError (exit 2) before a shard is written: a ``keep``
column of strings ("True"/"False") would otherwise read as all-true and ship what a stage dropped. A table whose
keys match none of the pooled samples is a UsageError too (keys in another case or another encoding, a table of
another corpus); one whose keys partly match gives a ``DecisionsWarning`` naming the count.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from gpic_lab.errors import UsageError

COLUMNS = ("key", "stage", "keep", "reason")


class DecisionsWarning(UserWarning):
    """Some keys of a decisions table match no sample of the pool."""


def _check_types(path: str) -> None:
    """The column types of a decisions table, from its Parquet schema (no rows read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - unreadable files are reported by read_parquet with their own message
        return
    expect = {"key": (pa.types.is_string, pa.types.is_large_string), "stage": (pa.types.is_string, pa.types.is_large_string),
              "keep": (pa.types.is_boolean,), "reason": (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)}
    for name, checks in expect.items():
        if name in schema.names and not any(check(schema.field(name).type) for check in checks):
            kind = {"keep": "boolean", "reason": "string (or null)"}.get(name, "string")
            raise UsageError(f"{path}: column {name!r} is {schema.field(name).type}, expected {kind} "
                             "(a decisions table as `gpic-lab stage` writes it)")


def _batches(path: str, columns: Sequence[str]) -> Iterator[Any]:
    """Record batches of `columns` (a missing column or an unreadable file is one error naming the file)."""
    from gpic_lab.errors import GpicError, exception_line
    from gpic_lab.pack.plan_io import open_dataset

    dataset = open_dataset(path)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise GpicError(f"{path}: unreadable parquet input (no column(s) {missing}; a decisions table as "
                        "`gpic-lab stage` writes it)")
    try:
        yield from dataset.to_batches(columns=list(columns))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise GpicError(f"{path}: unreadable parquet input ({exception_line(exc, with_type=True)})") from exc


def _check_batch(path: str, batch: Any) -> None:
    """No nulls in key, stage, keep; no empty stage."""
    import pyarrow.compute as pc

    for name in ("key", "stage", "keep"):
        nulls = batch.column(name).null_count
        if nulls:
            raise UsageError(f"{path}: column {name!r} has {nulls} null value(s)")
    if pc.any(pc.equal(pc.utf8_trim_whitespace(batch.column("stage")), "")).as_py():
        raise UsageError(f"{path}: column 'stage' has empty values")


def load_drops(paths: Sequence[str]) -> tuple[dict[str, list[tuple[str, str]]], list[str], list[str]]:
    """key -> [(stage, reason)] for every dropped key; the stages applied; the tables (for `check_keys`).

    Streams each table batch by batch (memory: the dropped rows, not the table), checking types and nulls on the
    way: a UsageError names the file before any shard is written."""
    drops: dict[str, list[tuple[str, str]]] = defaultdict(list)
    stages: set[str] = set()
    if not paths:  # pyarrow is imported only when there is a table to read (~0.1 s in a fresh process)
        return drops, [], []
    import pyarrow.compute as pc

    for path in paths:
        _check_types(path)
        for batch in _batches(path, COLUMNS):
            _check_batch(path, batch)
            stages.update(pc.unique(batch.column("stage")).to_pylist())
            dropped = batch.filter(pc.invert(batch.column("keep")))
            for key, stage, reason in zip(*(dropped.column(c).to_pylist() for c in ("key", "stage", "reason")),
                                          strict=True):
                drops[key].append((stage, reason if isinstance(reason, str) and reason else "dropped"))
    return drops, sorted(stages), list(paths)


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package: a notebook's report then
    shows the user's own call (``pack(...)``) under the warning, not a line of ours."""
    import sys

    frame, level = sys._getframe(1), 1  # the function that warns
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith("gpic_lab."):
        frame, level = frame.f_back, level + 1
    return level


def check_keys(tables: Sequence[str], pool: Collection[str]) -> None:
    """UsageError when a table's keys match no sample of the pool; a DecisionsWarning when only some do (the key
    column is streamed again, batch by batch)."""
    if not tables:  # nothing to check: pyarrow is not even imported (~0.1 s in a fresh process)
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.array(list(pool), pa.string())
    for path in tables:
        total = found = lowered = 0
        for batch in _batches(path, ["key"]):
            keys = batch.column(0).cast(pa.string())
            total += len(keys)
            found += int(pc.sum(pc.is_in(keys, value_set=value_set)).as_py() or 0)
            lowered += int(pc.sum(pc.is_in(pc.utf8_lower(keys), value_set=value_set)).as_py() or 0)
        if total == 0:
            continue
        if found == 0:
            hint = f" ({lowered} match in lower case: keys are 64 lowercase hex characters)" if lowered else ""
            raise UsageError(f"{path}: its {total} key(s) match none of the {len(pool)} pooled samples{hint}; "
                             "wrong table, or keys in another case or encoding?")
        if found < total:
            warnings.warn(DecisionsWarning(f"{path}: {total - found} of {total} key(s) match no pooled "
                                           "sample; their decisions apply to nothing"), stacklevel=_caller_level())
