"""Reference statistics assembled from per-range partial files, so that parallel workers (one shard range each,
``gpic-lab run --fan-out shard_range=...`` or ``gpic-lab refstats --shard-range``) never recompute each other's work.

``reference(shards, ..., shard_range="A:B")`` writes the partial of that range under ``<out>/partials/`` and returns
the statistics of that range alone; ``reference(shards, ...)`` without a range merges the partials already there
that cover disjoint parts of ``shards``, computes one more partial for the shards none covers, and writes (or reuses)
the reference of all of them under ``<out>``: mu and sigma equal a single pass over every shard.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError


def partial_files(items: list[str]) -> list[str]:
    """Partial .npz files from files, directories (their ``partial-*.npz``), brace ranges and globs."""
    import glob

    from gpic_lab.shards.sources import braces, has_glob

    out: list[str] = []
    for item in (b for raw in items for b in braces(str(raw))):
        path = Path(item)
        if path.is_dir():
            out += sorted(str(p) for p in path.glob("partial-*.npz"))
        elif has_glob(item) and not path.exists():
            out += sorted(glob.glob(item))
        else:
            out.append(item)
    if not out:
        raise UsageError(f"no partial statistics files in {', '.join(items)}")
    return out


def _partials(folder: Path, split: str, model_tag: str) -> list[tuple[str, list[str]]]:
    """(file, shards) of every partial under ``folder`` made for this split and model."""
    from gpic_lab.evaluation.refstats import sidecar

    found = []
    for npz in sorted(folder.glob("partial-*.npz")):
        side = sidecar(npz)
        if side.is_file():
            meta = json.loads(side.read_text())
            if meta.get("split") == split and meta.get("model") == model_tag:
                found.append((str(npz), [str(s) for s in meta.get("shards", [])]))
    return found


def _reused(out: Path, split: str, model_tag: str, shards: list[str]) -> dict[str, Any] | None:
    """A merged reference under ``out`` built from exactly this set of shards."""
    from gpic_lab.evaluation.refstats import config_name, sidecar

    for cand in sorted(out.glob(config_name(split, 0, model_tag).replace("_n0_", "_n*_"))):
        side = sidecar(cand)
        if side.is_file():
            meta = json.loads(side.read_text())
            if sorted(meta.get("shards", [])) == sorted(shards):
                return {"path": str(cand), "n": meta["n"], "dim": meta["dim"], "skipped": meta.get("skipped", {}),
                        "reused": True}
    return None


def reference(shards: list[str], model: Any, out: str | os.PathLike[str], split: str = "test",
              model_tag: str = "dinov2", shard_range: str = "", batch_size: int = 64,
              progress: bool | str = False) -> dict[str, Any]:
    """Reference statistics of ``shards`` (or of the ``shard_range`` part of their sorted list) from partials.

    Returns the ``merge_partials`` result (``path``, ``n``, ...) plus ``partials`` (the files merged) and
    ``computed`` (how many partials this call wrote).
    """
    from gpic_lab.evaluation.refstats import build_refstats, merge_partials
    from gpic_lab.shards.reader import list_shards
    from gpic_lab.shards.sources import range_tag, select

    every = sorted(list_shards(shards))
    picked = select(every, shard_range)
    out_dir, part_dir = Path(out), Path(out) / "partials"
    target = out_dir / "ranges" / range_tag(shard_range) if shard_range else out_dir
    found = _reused(target, split, model_tag, picked)
    if found is not None:  # stats files are never overwritten: the same shards give the same file
        return {**found, "partials": [], "computed": 0}
    have = [(f, s) for f, s in _partials(part_dir, split, model_tag) if set(s) <= set(picked)]
    use, covered = [], set()
    for f, s in sorted(have, key=lambda fs: -len(fs[1])):  # the largest disjoint partials first
        if not covered & set(s):
            use.append(f)
            covered |= set(s)
    missing = [s for s in picked if s not in covered]
    if missing:
        part = build_refstats(missing, model, part_dir, split=split, model_tag=model_tag, batch_size=batch_size,
                              partial=True, progress=progress)
        use.append(part["path"])
    target.mkdir(parents=True, exist_ok=True)
    merged = merge_partials(use, target, split=split)
    return {**merged, "partials": use, "computed": int(bool(missing))}
