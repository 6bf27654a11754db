"""What pack may overwrite or delete, and what it refuses to start with.

pack writes into ``--out`` only when that directory is new, empty, or an earlier pack's output: one holding a
``manifest.json`` (or, after a killed run, ``.pack-in-progress.json``) that lists the shards pack wrote there. It
never deletes or overwrites a shard those lists do not name, and refuses (UsageError, exit 2) an ``--out`` that
holds foreign shards or other files, that lies inside a source directory, or that holds a source shard. Temp files
of a killed run (``.<name>.<random>.tmp``, written by `gpic_lab.fsio.atomic_path`) are removed by the next run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

from gpic_lab.errors import UsageError

IN_PROGRESS = ".pack-in-progress.json"
OUTPUTS = ("manifest.json", "datasheet.json", "datasheet.md", "README.md")  # README.md: the dataset card
SPLIT_DIRS = ("train", "val", "test")
_SHARD_NAME = re.compile(r"(train|val|test)/[^/.][^/]*\.tar")


def check_sizes(**sizes: float) -> None:
    """--val/--test must be finite and >= 0 (NaN and infinity are not counts or fractions)."""
    for name, value in sizes.items():
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--{name} must be a finite count or fraction >= 0, got {value}")


def check_sources(out: Path, shards: Iterable[str]) -> None:
    """Neither direction of nesting: no source shard inside --out, and --out not inside a source directory."""
    target = out.resolve()
    for shard in shards:
        if "://" in shard:
            continue
        src = Path(shard).resolve()
        if src.is_relative_to(target):
            raise UsageError(f"source shard {shard} lies inside --out {out}; choose an output directory apart "
                             "from the inputs")
        if src.is_dir() and target.is_relative_to(src):
            raise UsageError(f"--out {out} lies inside the source directory {shard}: a second run would read its "
                             "own output as input; choose an output directory apart from the inputs")


def _listed(path: Path, what: str) -> set[str]:
    try:
        data = json.loads(path.read_text("utf-8"))
        files = {str(f) for f in (data["files"] if what == "progress" else [e["file"] for e in data["shards"]])}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise UsageError(f"{path}: not a readable pack {what} file; --out must be new, empty or an earlier "
                         "pack's output") from None
    unsafe = sorted(f for f in files if not _SHARD_NAME.fullmatch(f))
    if unsafe:  # these names are deleted later: never anything outside OUT's split directories
        raise UsageError(f"{path}: lists {unsafe[0]!r}, not a shard of OUT's train/val/test directories")
    return files


def owned_files(out: Path) -> set[str]:
    """Shards (relative paths) an earlier pack wrote into `out`; UsageError when `out` holds anything else."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory")
    entries = [p for p in out.iterdir() if not _is_temp(p)]
    if not entries:
        return set()
    manifest, progress = out / "manifest.json", out / IN_PROGRESS
    if not manifest.is_file() and not progress.is_file():
        raise UsageError(f"--out {out} is not empty and holds no manifest.json of an earlier pack; pack only writes "
                         "into a new or empty directory or its own earlier output")
    owned = (_listed(manifest, "manifest") if manifest.is_file() else set()) | \
            (_listed(progress, "progress") if progress.is_file() else set())
    _refuse_foreign(out, owned)
    return owned


def _refuse_foreign(out: Path, owned: set[str]) -> None:
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_dir() and rel in SPLIT_DIRS or _is_temp(p) or rel in OUTPUTS or rel == IN_PROGRESS or rel in owned:
            continue
        raise UsageError(f"--out {out} holds {rel}, which no earlier pack there wrote; pack never overwrites or "
                         "deletes files it does not own: move it or choose another --out")


def _is_temp(p: Path) -> bool:
    """A temp file of `gpic_lab.fsio.atomic_path` (``.<name>.<random>.tmp``)."""
    return p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")


def begin(out: Path, owned: set[str], planned: Iterable[str]) -> None:
    """Remove a killed run's temp files and record every shard this run may leave behind before writing any."""
    from gpic_lab.fsio import write_json_atomic

    if out.is_dir():
        for d in (out, *(out / s for s in SPLIT_DIRS)):
            for p in d.glob(".*.tmp") if d.is_dir() else ():
                if _is_temp(p):
                    p.unlink()
    write_json_atomic(out / IN_PROGRESS, {"files": sorted(owned | set(planned))})


def finish(out: Path, owned: set[str], written: set[str]) -> None:
    """Remove the shards an earlier pack wrote that this run did not rewrite (they would be read as part of OUT)."""
    for rel in sorted(owned - written):
        (out / rel).unlink(missing_ok=True)


def done(out: Path) -> None:
    """The manifest now lists what OUT holds: forget the in-progress record."""
    (out / IN_PROGRESS).unlink(missing_ok=True)
