"""Re-threshold a stage without recomputing it: new keep/reason from the ``score_*`` columns a stage stored.

``rethreshold(STAGE_DIR, OUT_DIR, {"threshold": 0.5})`` (``gpic-lab rethreshold STAGE_DIR --out OUT_DIR -p
threshold=0.5``) reads ``STAGE_DIR/decisions.parquet`` and the parameters the stage ran with (its summary.json),
applies the stage's rule for the new thresholds and writes a new table in the standard layout
(``decisions.parquet``, ``counts.csv``, ``reasons.csv``, ``summary.json``) that ``pack`` applies like the original.
Every row keeps its columns; ``keep`` and ``reason`` are the new decision, ``prev_keep`` / ``prev_reason`` the old
one, ``rethreshold_undecided`` marks rows the stored scores could not decide (they keep the old decision).
summary.json records the effective parameters, the ones changed, the source directory and what changed.

Rules (``RULES``, each ``fn(frame, params, source_params, stage_dir) -> {keep, reason, undecided, params}``):
``quality`` and ``safety-cpu`` in ``gpic_lab.filters.rethreshold``, ``dedup`` in ``gpic_lab.dedup.rethreshold``
(from the stored pair similarities).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

RULES: dict[str, str] = {
    "quality": "gpic_lab.filters.rethreshold:quality_rule",
    "safety-cpu": "gpic_lab.filters.rethreshold:safety_rule",
    "dedup": "gpic_lab.dedup.rethreshold:dedup_rule",
}


def rule_for(stage: str) -> Callable[..., dict[str, Any]]:
    """The rethreshold rule of a stage (a UsageError naming the stages that have one)."""
    spec = RULES.get(stage)
    if spec is None:
        raise UsageError(f"stage {stage!r} has no rethreshold rule; stages with one: {', '.join(sorted(RULES))}")
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_stage(stage_dir: str | Path) -> tuple[Any, str, dict[str, Any]]:
    """(decisions frame, stage name, the params it ran with) of a stage directory."""
    from gpic_lab.fsio import read_parquet

    src = Path(stage_dir)
    if not (src / "decisions.parquet").is_file():
        raise UsageError(f"{stage_dir}: no decisions.parquet (give a stage output directory)")
    frame = read_parquet(src / "decisions.parquet")
    stages = sorted(set(frame["stage"].astype(str))) if len(frame) else []
    if len(stages) != 1:
        raise UsageError(f"{src / 'decisions.parquet'}: holds stages {stages}; rethreshold needs one stage's table")
    summary = json.loads((src / "summary.json").read_text()) if (src / "summary.json").is_file() else {}
    params = summary.get("params") or summary.get("rule") or {}
    return frame, stages[0], dict(params)


def recompute(frame: Any, stage: str, params: Mapping[str, Any], source_params: Mapping[str, Any],
              stage_dir: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The decisions frame re-decided for ``params`` (in memory) and what changed; nothing is written."""
    result = rule_for(stage)(frame, dict(params), dict(source_params), stage_dir)
    out = frame.copy()
    out["prev_keep"], out["prev_reason"] = frame["keep"].astype(bool), frame["reason"].astype("object")
    out["keep"], out["reason"] = result["keep"], result["reason"]
    out["rethreshold_undecided"] = result["undecided"]
    for name, values in result.get("extras", {}).items():
        out[name] = values
    changed = out["keep"] != out["prev_keep"]
    info = {"params": result["params"], "changed_params": dict(params), "changed": int(changed.sum()),
            "newly_dropped": int((changed & ~out["keep"]).sum()), "newly_kept": int((changed & out["keep"]).sum()),
            "reason_changed": int((out["reason"].fillna("") != out["prev_reason"].fillna("")).sum()),
            "undecided": int(out["rethreshold_undecided"].sum())}
    return out, info


def rethreshold(stage_dir: str | Path, out_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Re-decide STAGE_DIR's table for ``params`` into OUT_DIR (standard layout); returns the summary.

    Args:
        stage_dir: a stage output directory (decisions.parquet, summary.json).
        out_dir: where the new table goes (a directory apart from ``stage_dir``).
        params: the thresholds to change; the others stay as the stage ran.
    """
    from gpic_lab.engine.records import reason_counts
    from gpic_lab.engine.stages import reasons_table
    from gpic_lab.fsio import atomic_path, write_json_atomic, write_parquet_atomic

    src, out = Path(stage_dir), Path(out_dir)
    if out.resolve() == src.resolve():
        raise UsageError(f"--out {out_dir}: choose a directory apart from the stage's own ({stage_dir})")
    frame, stage, source_params = load_stage(src)
    table, info = recompute(frame, stage, params, source_params, src)
    write_parquet_atomic(out / "decisions.parquet", table)
    with atomic_path(out / "counts.csv") as tmp:
        reason_counts(table).to_csv(tmp, index=False)
    reasons = reasons_table(table)
    with atomic_path(out / "reasons.csv") as tmp:
        reasons.to_csv(tmp, index=False)
    summary = {"stage": stage, "params": info["params"], "samples": len(table), "kept": int(table["keep"].sum()),
               "dropped": int((~table["keep"]).sum()),
               "reasons": dict(zip(reasons["reason"], reasons["count"].astype(int).tolist(), strict=True)),
               "rethreshold": {"from": str(src.resolve()), "source_params": source_params,
                               **{k: v for k, v in info.items() if k != "params"}}}
    write_json_atomic(out / "summary.json", summary)
    return summary
