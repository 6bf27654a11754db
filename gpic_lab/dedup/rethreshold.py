"""Re-decide a dedup table for other thresholds from its stored pair similarities (no image is embedded again).

The two-tier rule works on the graph of pairs, so a dedup table's own ``score_dup_similarity`` is not enough: the
pairs are kept beside it as ``pairs.parquet`` (columns ``a``, ``b``, ``similarity``; the similarity below which
pairs were not stored, ``floor``, in the file's metadata). Notebook 04 writes it; ``gpic-lab rethreshold DIR`` and
the notebook's sliders then rerun ``rule.apply_rule`` on it for any ``link >= floor``. Exact byte duplicates stay
grouped as the stage found them; ranks come from the table's width, height, key (and license with
``license_aware``). Rows the rule did not decide (``unreadable`` images) keep their decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError

PARAMS = ("link", "near_dup", "cluster_min", "license_aware")
PAIRS_FILE = "pairs.parquet"
FLOOR_KEY = b"gpic_lab.pairs_floor"
SLIDERS = {"link": (0.5, 1.0, 0.0025), "near_dup": (0.5, 1.0, 0.0025), "cluster_min": (2, 20, 1)}  # notebook 04


def pair_table(emb: Any, max_images: int = 4000) -> tuple[Any, float]:
    """Every pair of ``emb`` (small sets) or each image's neighbours above 0.5, and that floor."""
    from gpic_lab.dedup.report import all_pairs

    pairs = all_pairs(emb, floor=-1.0, max_images=max_images)
    return pairs[["a", "b", "similarity"]], (-1.0 if len(emb.vectors) <= max_images else 0.5)


def write_pairs(stage_dir: str | Path, pairs: Any, floor: float) -> Path:
    """``stage_dir/pairs.parquet`` with the floor in its metadata."""
    import pyarrow as pa

    from gpic_lab.fsio import write_parquet_atomic

    table = pa.Table.from_pandas(pairs[["a", "b", "similarity"]], preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), FLOOR_KEY: json.dumps(floor).encode()})
    return write_parquet_atomic(Path(stage_dir) / PAIRS_FILE, table)


def read_pairs(stage_dir: str | Path) -> tuple[Any, float]:
    """(pairs frame, floor) of a dedup directory; a UsageError naming the fix when there is none."""
    import pyarrow.parquet as pq

    path = Path(stage_dir) / PAIRS_FILE
    if not path.is_file():
        raise UsageError(f"{stage_dir}: no {PAIRS_FILE}; a dedup table is re-decided from its pair similarities "
                         "(notebook 04 writes them with dedup.rethreshold.write_pairs)")
    table = pq.read_table(path)
    floor = json.loads((table.schema.metadata or {}).get(FLOOR_KEY, b"-1.0"))
    return table.to_pandas(), float(floor)


def redecide(frame: Any, pairs: Any, floor: float, rule: Any) -> dict[str, Any]:
    """The rule on the stored pairs: {keep, reason, undecided, params, extras: {kept_key, similarity, ...}}."""
    from dataclasses import asdict

    from gpic_lab.dedup.rule import EXACT_REASON, apply_rule, permissive_mask, rank_order

    if rule.link < floor:
        raise UsageError(f"rethreshold dedup: link {rule.link} is below {floor}, the lowest similarity whose pairs "
                         "were stored; rerun dedup for it")
    old = frame["reason"].astype("object")
    ruled = (old.isna() | old.eq(EXACT_REASON) | old.str.startswith("near-dup>", na=False)
             | old.str.startswith("cluster>=", na=False)).to_numpy()
    keys = frame["key"].astype(str).to_numpy()
    index = {k: i for i, k in enumerate(keys) if ruled[i]}
    a = pairs["a"].map(index).to_numpy(dtype=float, na_value=np.nan)
    b = pairs["b"].map(index).to_numpy(dtype=float, na_value=np.nan)
    ok = ~np.isnan(a) & ~np.isnan(b) & (a != b)
    pi, pj = np.minimum(a[ok], b[ok]).astype(np.int64), np.maximum(a[ok], b[ok]).astype(np.int64)
    pixels = (frame["width"].fillna(0).astype(np.int64) * frame["height"].fillna(0).astype(np.int64)).to_numpy()
    permissive = permissive_mask(frame[["license"]].to_dict("records")) if rule.license_aware else None
    rank = rank_order(pixels, keys, permissive)
    kept_key = frame["kept_key"].astype("object") if "kept_key" in frame.columns else old * None
    sha = np.where(old.eq(EXACT_REASON).to_numpy() & kept_key.notna().to_numpy(), kept_key.to_numpy(), keys)
    res = apply_rule(len(frame), pi, pj, pairs["similarity"].to_numpy(dtype=float)[ok], rank, rule, sha.astype(str))
    reason = np.where(ruled, res.reason, old.to_numpy()).astype(object)
    reason = np.array([r if isinstance(r, str) else None for r in reason], dtype=object)
    kept = [str(keys[k]) if k >= 0 else None for k in res.kept]
    extras = {"kept_key": np.where(ruled, np.array(kept, dtype=object), kept_key.to_numpy()),
              "similarity": np.where(ruled, res.similarity, _col(frame, "similarity")),
              "score_dup_similarity": np.where(ruled, res.similarity, _col(frame, "score_dup_similarity")),
              "component_size": np.where(ruled, res.component_size, _col(frame, "component_size"))}
    return {"keep": np.array([r is None for r in reason], dtype=bool), "reason": reason,
            "undecided": np.zeros(len(frame), bool), "params": asdict(rule), "extras": extras}


def _col(frame: Any, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float, na_value=np.nan) if name in frame.columns else np.full(len(frame), np.nan)


def dedup_rule(frame: Any, params: Mapping[str, Any], source_params: Mapping[str, Any],
               stage_dir: str | Path | None = None) -> dict[str, Any]:
    """Rethreshold rule of the ``dedup`` stage (``gpic_lab.engine.rethreshold``): reads ``stage_dir/pairs.parquet``."""
    from gpic_lab.dedup.rule import Rule

    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise UsageError(f"rethreshold dedup: unknown threshold(s) {unknown}; known: {', '.join(PARAMS)}")
    if stage_dir is None:
        raise UsageError("rethreshold dedup: needs the stage directory (its pairs.parquet)")
    merged = {k: v for k, v in {**dict(source_params), **dict(params)}.items() if k in PARAMS}
    try:
        rule = Rule(**{**merged, "cluster_min": int(merged.get("cluster_min", 5)),
                       "license_aware": bool(merged.get("license_aware", False))})
    except TypeError as exc:
        raise UsageError(f"rethreshold dedup: {exc}") from None
    pairs, floor = read_pairs(stage_dir)
    return redecide(frame, pairs, floor, rule)
