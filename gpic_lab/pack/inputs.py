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
from collections.abc import Collection, Sequence
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.fsio import read_parquet

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


def read_decisions(path: str) -> Any:
    """The key, stage, keep and reason columns of one decisions table, checked (UsageError naming the file)."""
    _check_types(path)
    frame = read_parquet(path, columns=list(COLUMNS))
    for name in ("key", "stage", "keep"):
        nulls = int(frame[name].isna().sum())
        if nulls:
            raise UsageError(f"{path}: column {name!r} has {nulls} null value(s)")
    if (frame["stage"].str.strip() == "").any():
        raise UsageError(f"{path}: column 'stage' has empty values")
    return frame


def load_drops(paths: Sequence[str]) -> tuple[dict[str, list[tuple[str, str]]], list[str], list[tuple[str, Any]]]:
    """key -> [(stage, reason)] for every dropped key; the stages applied; and (path, key column) per table for
    `check_keys`."""
    drops: dict[str, list[tuple[str, str]]] = defaultdict(list)
    stages: set[str] = set()
    tables = []
    for path in paths:
        frame = read_decisions(path)
        stages.update(frame["stage"].unique())
        dropped = frame.loc[~frame["keep"].astype(bool), ["key", "stage", "reason"]]
        for key, stage, reason in dropped.itertuples(index=False):
            drops[key].append((stage, reason if isinstance(reason, str) and reason else "dropped"))
        tables.append((path, frame["key"]))
    return drops, sorted(stages), tables


def check_keys(tables: Sequence[tuple[str, Any]], pool: Collection[str]) -> None:
    """UsageError when a table's keys match no sample of the pool; a DecisionsWarning when only some do."""
    for path, keys in tables:
        if not len(keys):
            continue
        found = int(keys.isin(pool).sum()) if hasattr(keys, "isin") else sum(k in pool for k in keys)
        if found == 0:
            lowered = int(keys.str.lower().isin(pool).sum())
            hint = f" ({lowered} match in lower case: keys are 64 lowercase hex characters)" if lowered else ""
            raise UsageError(f"{path}: its {len(keys)} key(s) match none of the {len(pool)} pooled samples{hint}; "
                             "wrong table, or keys in another case or encoding?")
        if found < len(keys):
            warnings.warn(DecisionsWarning(f"{path}: {len(keys) - found} of {len(keys)} key(s) match no pooled "
                                           "sample; their decisions apply to nothing"), stacklevel=2)
