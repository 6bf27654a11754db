"""Which shards hold a tier, read from the data, never from shard indices.

A tier (Nano / Lite / Full, ``gpic_lab.shards.tiers``) is taken from, in this order:
1. a pack manifest (``manifest=`` or the ``manifest.json`` of the pack directory the shards sit in:
   ``OUT/manifest.json`` for ``OUT/train/gpic_train_00000.tar``): its ``tiers[tier]["files"]``;
2. otherwise each shard's first record: its ``split`` list names the tiers that hold the shard (GPIC's records
   do, and pack writes the same list on every record of a shard).

So the loader agrees with pack for any shard count (GPIC's 8,000: Nano 80, Lite 800; 10 shards: Nano = Lite =
shard 0), and val/test shards (``split = []``) belong to no tier. Records are read in shard-index order within a
file-name prefix and the reading stops at the first shard outside the tier (tiers are shard prefixes), so a Nano
selection from 8,000 remote shards reads 81 first records, not 8,000.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.shards.tiers import TIERS

_INDEX_RE = re.compile(r"^(?P<prefix>.*)_(?P<index>\d+)\.tar$")


def find_manifest(shards: Sequence[str]) -> Path | None:
    """The one pack manifest beside every (local) shard's split directory, or None."""
    found: set[Path] = set()
    for shard in shards:
        if "://" in shard:
            return None
        p = Path(shard).resolve()
        cand = next((d / "manifest.json" for d in (p.parent.parent, p.parent) if (d / "manifest.json").is_file()), None)
        if cand is None:
            return None
        found.add(cand)
    return found.pop() if len(found) == 1 else None


def from_manifest(shards: Sequence[str], tier: str, manifest: str | os.PathLike[str]) -> list[str]:
    """The shards listed under ``tiers[tier]["files"]`` of a pack manifest (in the given order)."""
    path = Path(manifest)
    try:
        data = json.loads(path.read_text())
        files = set(data["tiers"][tier]["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: no tier {tier!r} in this manifest ({exc.__class__.__name__})") from exc
    root = path.resolve().parent
    out = []
    for shard in shards:
        rel = Path(shard).resolve()
        if rel.is_relative_to(root) and rel.relative_to(root).as_posix() in files:
            out.append(shard)
    return out


def first_split(shard: str) -> list[str] | None:
    """The ``split`` list of a shard's first record (None for a shard without records)."""
    from gpic_lab.shards.reader import Sample, iter_entries

    entries = iter_entries(shard, images=False)
    try:
        for entry in entries:
            if isinstance(entry, Sample):
                split = entry.meta.get("split")
                if not isinstance(split, list):
                    raise UsageError(f"{shard}: first record has no split list: cannot tell its tier "
                                     "(pass the pack's manifest.json)")
                return [str(t) for t in split]
    finally:
        entries.close()  # type: ignore[attr-defined]
    return None


def _order(shards: Sequence[str]) -> list[tuple[str, int, str]]:
    keyed = []
    for pos, shard in enumerate(shards):
        m = _INDEX_RE.match(Path(shard.split("?")[0]).name)
        keyed.append((m.group("prefix") if m else f"\0{pos}", int(m.group("index")) if m else 0, shard))
    return sorted(keyed)


def from_records(shards: Sequence[str], tier: str) -> list[str]:
    """The shards whose first record lists ``tier`` (in the given order); stops reading a prefix group at its first
    shard outside the tier."""
    chosen: set[str] = set()
    stopped: set[str] = set()
    for prefix, _, shard in _order(shards):
        if prefix in stopped:
            continue
        split = first_split(shard)
        if split is not None and tier in split:
            chosen.add(shard)
        elif split is not None and not prefix.startswith("\0"):
            stopped.add(prefix)
    return [s for s in shards if s in chosen]


def select(shards: Sequence[str], tier: str | None, manifest: str | os.PathLike[str] | None = None) -> list[str]:
    """The shards of ``tier`` (all shards for None), from the manifest when there is one, else from the records."""
    if tier is None:
        return list(shards)
    if tier not in TIERS:
        raise UsageError(f"unknown tier {tier!r}; choose from {', '.join(TIERS)}")
    found: Any = manifest or find_manifest(shards)
    return from_manifest(shards, tier, found) if found else from_records(shards, tier)
