"""License audit: distribution by license family × source × split × tier (counts and pixels), non-permissive
leaks, missing/mismatched attribution or license_url (via `gpic_lab.core.licenses.check_record`), licenses by year of
retrieval, and a publishable CSV attribution report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

TABLE_COLUMNS = ("key", "shard", "split_dir", "tiers", "license", "license_url", "attribution", "retrieved_at",
                 "year", "license_family", "spdx", "permissive", "license_reason", "source", "width", "height",
                 "pixels", "problems")


CLEAN_SAMPLE_SPLITS = ("sample/train", "sample/val", "sample/test")


def packaged_paths(spec: str) -> list[Any]:
    """Packaged shard inputs. "auto": notebook 06's pack output (`interim/06_pack/packed`, when it holds a manifest),
    else the clean sample splits; otherwise comma-separated shard files/dirs relative to the data root."""
    from gpic_lab import paths

    if spec.strip() == "auto":
        packed = paths.interim_dir("06_pack") / "packed"
        if (packed / "manifest.json").is_file():
            return [packed]
        spec = ",".join(CLEAN_SAMPLE_SPLITS)
    return [paths.resolve_data(p.strip()) for p in spec.split(",") if p.strip()]


def license_table(paths: Sequence[str | os.PathLike[str]]) -> Any:
    """One row per sample (metadata only): license facts from gpic_lab.core.licenses and check_record problems."""
    import pandas as pd

    from gpic_lab.core.licenses import check_record, normalize, source_of
    from gpic_lab.shards.reader import iter_samples, list_shards

    rows = []
    for s in iter_samples(list_shards(paths), images=False):
        m = s.meta
        lic = normalize(m.get("license"), m.get("license_url"))
        problems = [code for code, _ in check_record(m)]
        rows.append({
            "key": s.key, "shard": s.shard, "split_dir": Path(s.shard).parent.name,
            "tiers": ",".join(m.get("split") or []) or "none", "license": m.get("license", ""),
            "license_url": m.get("license_url", ""), "attribution": m.get("attribution", ""),
            "retrieved_at": m.get("retrieved_at", ""), "year": str(m.get("retrieved_at", ""))[:4] or "unknown",
            "license_family": lic.family, "spdx": lic.spdx, "permissive": bool(lic.permissive),
            "license_reason": lic.reason, "source": source_of(m), "width": int(m.get("img_width") or 0),
            "height": int(m.get("img_height") or 0), "problems": ",".join(problems)})
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    frame["pixels"] = frame["width"] * frame["height"]
    return frame


def distribution(frame: Any, by: Sequence[str] = ("license_family", "source", "split_dir", "tier")) -> Any:
    """Samples and megapixels per combination of `by` (a sample in several tiers counts once per tier)."""
    bad = set(by) - set(frame.columns) - {"tier"}
    if bad:
        raise UsageError(f"distribution: unknown columns {sorted(bad)}")
    data = frame.assign(tier=frame["tiers"].str.split(",")).explode("tier") if "tier" in by else frame
    out = data.groupby(list(by), dropna=False).agg(samples=("key", "size"), pixels=("pixels", "sum")).reset_index()
    out["megapixels"] = (out.pop("pixels") / 1e6).round(3)
    return out.sort_values(list(by)).reset_index(drop=True)


def leaks(frame: Any) -> Any:
    """Non-permissive samples (by gpic_lab.core.licenses.normalize), with the reason."""
    cols = ["key", "shard", "license", "license_url", "license_family", "license_reason", "source"]
    return frame.loc[~frame["permissive"], cols].reset_index(drop=True)


def attribution_problems(frame: Any) -> Any:
    """Samples whose attribution or license_url is missing or mismatched (check_record codes)."""
    cols = ["key", "shard", "license", "license_url", "attribution", "problems"]
    return frame.loc[frame["problems"] != "", cols].reset_index(drop=True)


def by_year(frame: Any) -> Any:
    """Samples per license family (columns) and year of retrieval (rows)."""
    return frame.pivot_table(index="year", columns="license_family", values="key", aggfunc="count", fill_value=0)


def attribution_report(frame: Any, out: str | os.PathLike[str]) -> Path:
    """Write the publishable attribution CSV (key, attribution, license, SPDX, license URL, source) atomically;
    only permissive samples are listed (the others must not be distributed)."""
    from gpic_lab.fsio import atomic_path

    cols = ["key", "attribution", "license", "spdx", "license_url", "source"]
    report = frame.loc[frame["permissive"], cols].sort_values("key")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        report.to_csv(tmp, index=False)
    return target


def summary(frame: Any) -> dict[str, Any]:
    """Headline numbers of one audited set."""
    return {"samples": int(len(frame)), "leaks": int((~frame["permissive"]).sum()),
            "attribution_problems": int((frame["problems"] != "").sum()),
            "families": {k: int(v) for k, v in frame["license_family"].value_counts().items()},
            "megapixels": round(float(frame["pixels"].sum()) / 1e6, 2)}


def family_figure(frame: Any, title: str) -> Any:
    """Matplotlib: samples and megapixels per license family, stacked by split directory."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (value, label) in zip(axes, (("key", "samples"), ("pixels", "megapixels")), strict=True):
        agg = "count" if value == "key" else "sum"
        table = frame.pivot_table(index="license_family", columns="split_dir", values=value, aggfunc=agg, fill_value=0)
        (table / (1e6 if value == "pixels" else 1)).plot.barh(stacked=True, ax=ax, width=0.75)
        ax.set_xlabel(label)
        ax.set_ylabel("")
        ax.set_title(f"{title}: {label} per license family")
        ax.legend(title="split dir", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def sunburst(frame: Any, title: str) -> Any:
    """Plotly (interactive): permissive → family → source → split dir, sized by samples."""
    import plotly.express as px

    data = frame.assign(status=frame["permissive"].map({True: "permissive", False: "NOT permissive"}))
    data = data.groupby(["status", "license_family", "source", "split_dir"]).size().reset_index(name="samples")
    return px.sunburst(data, path=["status", "license_family", "source", "split_dir"], values="samples", title=title)
