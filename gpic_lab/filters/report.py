"""Tables and figures for the quality / safety filter stages (notebook 03): run the filter stages, combine their
decisions into one row per key, and plot the quality scores against their thresholds.

Generic pieces (ground truth, confusion table, drop-count figure, dropped-image grid) come from
``gpic_lab.collect.report`` and work on any decisions table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

ORDER = ("quality", "safety-cpu", "vlm-judge")  # a key dropped by several stages gets the first stage's reason


def run_filters(paths: Sequence[str | os.PathLike[str]], out_root: str | os.PathLike[str],
                params: Mapping[str, Mapping[str, Any]], engine: str = "local", workers: int | None = 1,
                force: bool = False) -> dict[str, dict[str, Any]]:
    """Run each stage named in ``params`` (stage -> its params) into ``out_root/<stage>``; summaries per stage."""
    from gpic_lab.engine.stages import run_stage

    unknown = sorted(set(params) - set(ORDER))
    if unknown:
        raise UsageError(f"run_filters: unknown filter stage(s) {unknown}; known: {list(ORDER)}")
    root = Path(out_root)
    return {name: run_stage(name, [str(p) for p in paths], root / name, params=dict(params[name]), engine=engine,
                            workers=workers, force=force, progress=False)
            for name in ORDER if name in params}


def stage_summary(summaries: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per stage: samples, kept, dropped and the drop counts per reason."""
    import pandas as pd

    rows = []
    for name, s in summaries.items():
        reasons = {r: n for r, n in s["reasons"].items() if r != "kept"}
        rows.append({"stage": name, "samples": s["samples"], "kept": s["kept"], "dropped": s["dropped"],
                     "computed shards": s["computed"], "reasons": json.dumps(reasons)})
    return pd.DataFrame(rows).set_index("stage")


def combine(out_root: str | os.PathLike[str], stages: Sequence[str] = ORDER) -> Any:
    """One row per key over the stages found under ``out_root``: dropped when any stage dropped it, with the reason
    of the first dropping stage in ``ORDER`` (column ``stage`` names it), every stage's scores (prefixed by stage)
    and a ``<stage>_reason`` column per stage ("kept" when that stage kept the key)."""
    import pandas as pd

    frames = {s: pd.read_parquet(Path(out_root) / s / "decisions.parquet") for s in stages
              if (Path(out_root) / s / "decisions.parquet").is_file()}
    if not frames:
        raise UsageError(f"{out_root}: no filter stage outputs (expected {', '.join(stages)} subdirectories)")
    base_cols = ["key", "shard", "license", "license_family", "source"]
    first = next(iter(frames.values()))
    out = first[base_cols].copy()
    for name, frame in frames.items():
        if sorted(frame["key"]) != sorted(out["key"]):
            raise UsageError(f"{out_root}/{name}: decisions cover other keys than the other stages'")
        part = frame.set_index("key")
        out[f"{name}_reason"] = out["key"].map(part["reason"].fillna("kept"))
        for col in (c for c in frame.columns if c.startswith("score_")):
            out[f"{name}.{col[6:]}"] = out["key"].map(part[col])
    reasons = [out[f"{s}_reason"] for s in frames]
    out["reason"], out["stage"] = None, None
    for name, col in zip(reversed(list(frames)), reversed(reasons), strict=True):
        dropped = col != "kept"
        out.loc[dropped, "reason"] = col[dropped]
        out.loc[dropped, "stage"] = name
    out["keep"] = out["reason"].isna()
    return out


THRESHOLD_PANELS = (  # (score, threshold field, x label, log scale)
    ("luma_mean", None, "mean luma (0-255)", False),
    ("dark_share", "exposure_share", "share of dark pixels", False),
    ("bright_share", "exposure_share", "share of blown-out pixels", False),
    ("pixel_std", "blank_std", "pixel std (near-blank below)", True),
    ("laplacian_var", "blur_laplacian_var", "Laplacian variance (blur candidate below)", True),
    ("edge_sharpness", "blur_edge_sharpness", "edge sharpness (blur candidates only)", True),
)


def plot_quality_scores(decisions: Any, thresholds: Any = None) -> Any:
    """Strip plots of the heuristic quality scores, kept (green) vs dropped (red, labelled by reason), with each
    score's threshold as a dashed line."""
    import matplotlib.pyplot as plt
    import numpy as np

    from gpic_lab.filters.quality import DEFAULT

    t = thresholds or DEFAULT
    fig, axes = plt.subplots(len(THRESHOLD_PANELS), 1, figsize=(11, 1.45 * len(THRESHOLD_PANELS) + 0.6))
    rng = np.random.default_rng(0)
    reason = decisions["quality_reason"] if "quality_reason" in decisions else decisions["reason"].fillna("kept")
    for ax, (score, field, label, log) in zip(axes, THRESHOLD_PANELS, strict=True):
        col = f"quality.{score}" if f"quality.{score}" in decisions else f"score_{score}"
        values = decisions[col].astype(float)
        for name, color in (("kept", "#27ae60"), ("dropped", "#c0392b")):
            mask = (reason == "kept") if name == "kept" else (reason != "kept")
            x = values[mask].to_numpy()
            x = np.clip(x, 1e-3, None) if log else x
            ax.scatter(x, rng.uniform(-0.3, 0.3, len(x)), s=14, color=color, alpha=0.7, label=name)
        if field:
            ax.axvline(getattr(t, field), color="#333333", ls="--", lw=1)
        ax.set_xscale("log" if log else "linear")
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle("heuristic quality scores (dashed: threshold); NaN scores are not plotted", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncols=2, frameon=False)
    return fig


def planted_outcomes(decisions: Any, truth: Any) -> Any:
    """Each planted key: its label, what every stage decided, and the combined reason."""
    cols = ["key", *[c for c in decisions.columns if c.endswith("_reason")], "reason"]
    rows = decisions[decisions["key"].isin(truth.index)][cols].copy()
    rows.insert(1, "planted", rows["key"].map(truth))
    rows["key"] = rows["key"].str[:12]
    return rows.sort_values("planted").reset_index(drop=True)


def nan_free(decisions: Any, columns: Sequence[str]) -> bool:
    """True when none of ``columns`` holds NaN for kept rows (dropped rows may have unmeasured scores)."""
    kept = decisions[decisions["keep"]]
    return all(not any(math.isnan(v) for v in kept[c].astype(float)) for c in columns if c in kept)
