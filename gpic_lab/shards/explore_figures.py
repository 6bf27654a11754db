"""Notebook 01's figures drawn from the small aggregate tables of ``explore_lazy`` (never from the rows)."""

from __future__ import annotations

from typing import Any

from gpic_lab.shards.explore import PAPER_MEDIAN_WORDS
from gpic_lab.shards.schema import CAPTION_TYPES


def plot_licenses(table: Any) -> Any:
    """Bar chart of samples by license family, stacked by source (``explore_lazy.license_table``)."""
    import matplotlib.pyplot as plt

    n = int(table.loc["total", "total"]) if len(table) else 0
    body = table.drop(index="total", columns="total") if len(table) else table
    fig, ax = plt.subplots(figsize=(7, 3.5))
    body.sort_values(body.columns.tolist()[0], ascending=True).plot.barh(stacked=True, ax=ax)
    ax.set_xlabel("samples")
    ax.set_ylabel("license family")
    ax.set_title(f"Licenses by family and source ({n:,} samples)")
    ax.legend(title="source", loc="lower right")
    fig.tight_layout()
    return fig


def plot_caption_mix(mix: Any) -> Any:
    """Observed caption-type shares against the 1/45/45/9 target, 95% binomial bars (``explore_lazy.caption_mix``)."""
    import matplotlib.pyplot as plt
    import numpy as np

    n = max(int(mix["count"].sum()), 1)
    x = np.arange(len(mix))
    err = 1.96 * np.sqrt(mix["target"] * (1 - mix["target"]) / n)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, mix["share"], 0.4, label=f"observed (n={n:,})")
    ax.bar(x + 0.2, mix["target"], 0.4, yerr=[np.minimum(err, mix["target"]), err], capsize=3, alpha=0.6,
           label="GPIC target ±95% at this n")
    ax.set_ylim(0, min(1.0, float(max(mix["share"].max(), (mix["target"] + err).max())) + 0.12))
    ax.set_xticks(x, mix.index)
    ax.set_ylabel("share of samples")
    ax.set_title("Caption-type mix vs GPIC's 1/45/45/9")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_caption_lengths(counts: Any) -> Any:
    """Box plot (whiskers p5-p95) of caption words per type from ``explore_lazy.word_counts``, paper medians marked."""
    import matplotlib.pyplot as plt
    import numpy as np

    from gpic_lab.shards.explore_lazy import quantile_from_counts

    stats, types = [], []
    for ctype in CAPTION_TYPES:
        part = counts[counts["caption_type"] == ctype]
        if not len(part):
            continue
        v, c = part["caption_words"].to_numpy(dtype=float), part["len"].to_numpy(dtype=np.int64)
        q = {p: quantile_from_counts(v, c, p) for p in (0.05, 0.25, 0.5, 0.75, 0.95)}
        stats.append({"label": ctype, "med": q[0.5], "q1": q[0.25], "q3": q[0.75], "whislo": q[0.05],
                      "whishi": q[0.95], "mean": float((v * c).sum() / c.sum()), "fliers": []})
        types.append(ctype)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bxp(stats, showmeans=True)
    for i, ctype in enumerate(types, start=1):
        ax.plot([i - 0.35, i + 0.35], [PAPER_MEDIAN_WORDS[ctype]] * 2, "r--", lw=1.5,
                label="paper median" if i == 1 else None)
    ax.set_yscale("log")
    ax.set_ylabel("words per caption (log)")
    ax.set_title("Caption length by type (whiskers: p5-p95)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_sizes(sizes: Any) -> Any:
    """Distinct width × height (marker area ~ samples, log axes) and the aspect histogram (``explore_lazy.size_counts``)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    n = sizes["len"].to_numpy(dtype=float)
    ax1.scatter(sizes["img_width"], sizes["img_height"], s=8 + 40 * np.log10(n) / max(np.log10(n.max()), 1),
                alpha=0.6)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    for axis in (ax1.xaxis, ax1.yaxis):
        axis.set_major_locator(FixedLocator([128, 256, 512, 1024, 2048, 4096, 8192]))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax1.axvline(256, color="r", ls=":", lw=1)
    ax1.axhline(256, color="r", ls=":", lw=1, label="256 px (GPIC keeps longest side ≥ 256)")
    ax1.set_xlabel("width (px)")
    ax1.set_ylabel("height (px)")
    ax1.set_title(f"Image sizes ({len(sizes):,} distinct, {int(n.sum()):,} samples)")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.hist(np.log2(sizes["img_width"] / sizes["img_height"]), weights=n, bins=np.linspace(-2.2, 2.2, 45))
    ax2.set_xticks([-2, -1, 0, 1, 2], ["1:4", "1:2", "1:1", "2:1", "4:1"])
    ax2.set_xlabel("aspect ratio width:height (log scale)")
    ax2.set_ylabel("samples")
    ax2.set_title("Aspect ratios")
    fig.tight_layout()
    return fig


def plot_shard_counts(table: Any, max_shards: int = 60) -> Any:
    """Samples per shard stacked by caption type (``explore_lazy.shard_counts``; the first ``max_shards`` shards)."""
    import matplotlib.pyplot as plt

    part = table[[c for c in CAPTION_TYPES if c in table.columns]].head(max_shards)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(part) + 3), 3.5))
    part.plot.bar(stacked=True, ax=ax)
    ax.legend(title="caption type", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel("samples")
    ax.set_xlabel("")
    shown = f" (first {len(part)} of {len(table)})" if len(table) > len(part) else ""
    ax.set_title(f"Samples per shard by caption type{shown}")
    ax.tick_params(axis="x", labelrotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig
