"""Tables and figures for notebook 06 (packaging): stage decisions found, tiers, balance, reproducibility."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpic_lab.caption.levels import LEVELS

EXPECTED_STAGES = ("license", "quality", "vlm-judge", "safety-cpu", "dedup", "caption-qc")


def find_decisions(spec: str, root: str | os.PathLike[str] | None = None) -> tuple[list[str], Any]:
    """Decision tables to apply, and a table of what was found per stage directory.

    Args:
        spec: "auto" (every ``interim/*/decisions.parquet`` under the data root), "" (none) or comma-separated
            stage dirs / decisions.parquet files relative to the data root (a missing one is a UsageError).
    Returns (paths, frame with stage_dir, stages, rows, dropped, top reasons).
    """
    import pandas as pd

    from gpic_lab.errors import UsageError
    from gpic_lab.paths import data_root, resolve_data

    base = Path(root) if root else data_root()
    if spec == "auto":
        found = sorted(str(p) for p in (base / "interim").glob("*/decisions.parquet"))
    else:
        found = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            p = resolve_data(part)
            if isinstance(p, str):  # a URL: decisions tables are read from local stage outputs only
                raise UsageError(f"{part}: decisions tables must be local files or directories, not URLs")
            p = p / "decisions.parquet" if p.is_dir() else p
            if not p.is_file():
                raise UsageError(f"{part}: no decisions.parquet there")
            found.append(str(p))
    rows = []
    for path in found:
        frame = pd.read_parquet(path, columns=["key", "stage", "keep", "reason"])
        drops = frame[~frame["keep"].astype(bool)]
        top = drops["reason"].value_counts().head(3)
        rows.append({"stage_dir": Path(path).parent.name, "stages": ",".join(sorted(frame["stage"].astype(str).unique())),
                     "rows": len(frame), "dropped": len(drops),
                     "top_reasons": ", ".join(f"{r} ({n})" for r, n in top.items())})
    return found, pd.DataFrame(rows, columns=["stage_dir", "stages", "rows", "dropped", "top_reasons"])


def missing_stages(found: Any) -> list[str]:
    """Expected GPIC filter stages with no decisions among those found (shown, never silently ignored)."""
    seen = {s for cell in found["stages"] for s in str(cell).split(",") if s}
    return [s for s in EXPECTED_STAGES if s not in seen]


def tiers_table(manifest: Mapping[str, Any]) -> Any:
    """Splits and tiers: samples, shards and bytes."""
    import pandas as pd

    rows = [{"set": s, "kind": "split", "samples": v["samples"], "shards": v["shards"],
             "mib": round(sum(e["bytes"] for e in manifest["shards"] if e["split"] == s) / 2**20, 2)}
            for s, v in manifest["splits"].items()]
    sizes = {e["file"]: e["bytes"] for e in manifest["shards"]}
    rows += [{"set": t, "kind": "tier", "samples": v["samples"], "shards": v["shards"],
              "mib": round(sum(sizes[f] for f in v["files"]) / 2**20, 2)} for t, v in manifest["tiers"].items()]
    return pd.DataFrame(rows)


def drops_table(datasheet: Mapping[str, Any]) -> Any:
    """Exclusions per stage and reason from a datasheet."""
    import pandas as pd

    rows = [{"stage": s, "reason": r, "samples": n} for s, rs in datasheet["drops"].items() for r, n in rs.items()]
    return pd.DataFrame(rows, columns=["stage", "reason", "samples"])


def balance_figure(manifest: Mapping[str, Any]) -> Any:
    """Per-shard caption-type and source composition of the train shards (like GPIC's Fig. 8)."""
    import matplotlib.pyplot as plt
    import numpy as np

    train = [e for e in manifest["shards"] if e["split"] == "train"]
    x = np.arange(len(train))
    totals = np.array([max(e["samples"], 1) for e in train], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    for ax, field, cats in ((axes[0], "caption_types", LEVELS),
                            (axes[1], "sources", sorted({s for e in train for s in e["sources"]}))):
        bottom = np.zeros(len(train))
        for cat in cats:
            values = np.array([e[field].get(cat, 0) for e in train], dtype=float) / totals
            ax.bar(x, values, bottom=bottom, label=cat)
            bottom += values
        ax.set_xticks(x, [f"{e['index']}" + ("*" if "nano" in e["tiers"] else "") for e in train])
        ax.set_xlabel("train shard (* = in Nano)")
        ax.set_ylabel("share of the shard's samples")
        ax.set_ylim(0, 1)
        ax.set_title(f"{field.replace('_', ' ')} per train shard (n = {int(totals.min())}-{int(totals.max())})")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def compare_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> Any:
    """Per shard file: sha256 of two packs side by side (identical inputs + seed must give identical bytes)."""
    import pandas as pd

    hb = {e["file"]: e["sha256"] for e in b["shards"]}
    return pd.DataFrame([{"file": e["file"], "sha256": e["sha256"][:16], "identical": hb.get(e["file"]) == e["sha256"]}
                         for e in a["shards"]])


def problems_table(problems: Sequence[Any]) -> Any:
    """validate/verify problems as a frame (empty when clean)."""
    import pandas as pd

    return pd.DataFrame([{"line": p.line()} for p in problems], columns=["line"])
