"""Caption outputs on disk: ``*.captions.parquet`` files of a caption run, read as a frame or by key."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.fsio import read_parquet

REDO_SUFFIX = ".redo.captions.parquet"


def caption_files(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Captions parquet files from files or caption output directories (their ``*.captions.parquet``). Second-pass
    files (``*.redo.captions.parquet``, from ``caption --redo``) come after every first-pass file, so that where
    captions are read by key (later files win) the corrected caption is the one used."""
    out: list[str] = []
    for raw in paths:
        p = Path(raw)
        found = sorted(p.glob("*.captions.parquet")) if p.is_dir() else [p] if p.is_file() else []
        if not found:
            raise UsageError(f"{raw}: no captions parquet there")
        out += [str(f) for f in found]
    return sorted(out, key=lambda f: f.endswith(REDO_SUFFIX))  # stable: first passes in order, then redos


def captions_by_key(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    """key -> caption row from captions parquet(s) (later files win)."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        frame = read_parquet(path)
        if "key" in frame.columns and frame["key"].duplicated().any():
            key = frame.loc[frame["key"].duplicated(), "key"].iloc[0]
            raise UsageError(f"{path}: several captions for key {key} (a `caption --levels all` run, for audits?); "
                             "pack takes one caption per image")
        for row in frame.to_dict("records"):
            out[row["key"]] = row
    return out


def load_captions(out_dir: str | os.PathLike[str], redo: bool = False) -> Any:
    """The first-pass ``*.captions.parquet`` under a caption output directory as one DataFrame; with ``redo`` the
    second-pass ``*.redo.captions.parquet`` files only (``caption --redo``)."""
    import pandas as pd

    files = [f for f in sorted(Path(out_dir).glob("*.captions.parquet")) if f.name.endswith(REDO_SUFFIX) == redo]
    if not files:
        raise UsageError(f"{out_dir}: no *.captions.parquet files")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
