"""Tables and figures for exploring a set of GPIC shards (notebook 01), built on a catalog DataFrame.

Every function takes the DataFrame of `gpic_lab.shards.catalog.scan(...)[0].to_pandas()` (or a catalog Parquet file
read with pandas) and returns a table or a matplotlib figure; nothing here reads images except `image_grid`.
"""

from __future__ import annotations

import textwrap
from typing import Any

from gpic_lab.shards.schema import CAPTION_TYPES

# GPIC's caption-type mix (paper §2.4; docs/gpic.md): 1% tag, 45% short, 45% medium, 9% long, in every split and shard.
TARGET_MIX = {"tag": 0.01, "short": 0.45, "medium": 0.45, "long": 0.09}
# Median caption length in words measured on 53,637 released images (a third-party survey of five released shards).
PAPER_MEDIAN_WORDS = {"tag": 7.0, "short": 17.0, "medium": 39.0, "long": 131.0}


def load_catalog(paths: list[Any], workers: int | None = None) -> tuple[Any, list[Any]]:
    """Scan shards into a catalog DataFrame (metadata only); returns (frame, problems)."""
    from gpic_lab.shards.catalog import scan

    table, problems = scan(paths, workers=workers)
    frame = table.to_pandas()
    frame["caption_words"] = frame["caption"].map(caption_words)
    frame["aspect"] = frame["img_width"] / frame["img_height"]
    frame["megapixels"] = frame["img_width"] * frame["img_height"] / 1e6
    frame["shard_name"] = frame["shard"].map(lambda s: str(s).rsplit("/", 1)[-1])
    return frame, problems


def caption_words(caption: str) -> int:
    """Words in a caption; tags count per comma-separated item word, like the paper's whitespace split."""
    return len(str(caption).replace(",", " ").split())


def license_table(frame: Any) -> Any:
    """Samples per license family × source, with totals (rows: family, columns: source)."""
    import pandas as pd

    table = pd.crosstab(frame["license_family"].replace("", "unknown"), frame["source"].replace("", "other"),
                        margins=True, margins_name="total")
    return table


def caption_mix(frame: Any) -> Any:
    """Observed caption-type counts and shares next to GPIC's 1/45/45/9 target, with the binomial error."""
    import pandas as pd

    n = max(len(frame), 1)
    counts = frame["caption_type"].value_counts()
    rows = []
    for ctype in CAPTION_TYPES:
        share = counts.get(ctype, 0) / n
        target = TARGET_MIX[ctype]
        stderr = (target * (1 - target) / n) ** 0.5
        rows.append({"caption_type": ctype, "count": int(counts.get(ctype, 0)), "share": share, "target": target,
                     "z": (share - target) / stderr if stderr else 0.0})
    return pd.DataFrame(rows).set_index("caption_type")


def caption_lengths(frame: Any) -> Any:
    """Caption length in words per type (count, median, mean, p5, p95) next to the paper's medians."""
    grouped = frame.groupby("caption_type")["caption_words"]
    table = grouped.agg(count="count", median="median", mean="mean",
                        p5=lambda s: s.quantile(0.05), p95=lambda s: s.quantile(0.95))
    table = table.reindex([c for c in CAPTION_TYPES if c in table.index])
    table["paper_median"] = [PAPER_MEDIAN_WORDS[c] for c in table.index]
    table["median_vs_paper"] = table["median"] / table["paper_median"]
    return table


def size_table(frame: Any) -> Any:
    """Summary of width, height, longest side, aspect ratio, megapixels and bytes per image."""
    longest = frame[["img_width", "img_height"]].max(axis=1).rename("longest_side")
    cols = frame[["img_width", "img_height", "aspect", "megapixels", "image_bytes"]].join(longest)
    return cols.describe(percentiles=[0.05, 0.5, 0.95]).T


def shard_counts(frame: Any) -> Any:
    """Samples per shard with caption-type and source breakdown."""
    import pandas as pd

    by_type = pd.crosstab(frame["shard_name"], frame["caption_type"])
    by_source = pd.crosstab(frame["shard_name"], frame["source"].replace("", "other")).add_prefix("source_")
    table = by_type.join(by_source)
    table.insert(0, "samples", frame.groupby("shard_name").size())
    return table


def plot_licenses(frame: Any) -> Any:
    """Bar chart of samples by license family, stacked by source."""
    import matplotlib.pyplot as plt

    table = license_table(frame).drop(index="total", columns="total")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    table.sort_values(table.columns.tolist()[0], ascending=True).plot.barh(stacked=True, ax=ax)
    ax.set_xlabel("samples")
    ax.set_ylabel("license family")
    ax.set_title(f"Licenses by family and source ({len(frame)} samples)")
    ax.legend(title="source", loc="lower right")
    fig.tight_layout()
    return fig


def plot_caption_mix(frame: Any) -> Any:
    """Observed caption-type shares against the 1/45/45/9 target (with 95% binomial error bars)."""
    import matplotlib.pyplot as plt
    import numpy as np

    mix = caption_mix(frame)
    x = np.arange(len(mix))
    err = 1.96 * np.sqrt(mix["target"] * (1 - mix["target"]) / max(len(frame), 1))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, mix["share"], 0.4, label=f"observed (n={len(frame)})")
    lower = np.minimum(err, mix["target"])  # a share cannot go below 0
    ax.bar(x + 0.2, mix["target"], 0.4, yerr=[lower, err], capsize=3, alpha=0.6, label="GPIC target ±95% at this n")
    ax.set_ylim(0, min(1.0, float(max(mix["share"].max(), (mix["target"] + err).max())) + 0.12))
    ax.set_xticks(x, mix.index)
    ax.set_ylabel("share of samples")
    ax.set_title("Caption-type mix vs GPIC's 1/45/45/9")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_caption_lengths(frame: Any) -> Any:
    """Box plot of caption words per type with the paper's medians marked."""
    import matplotlib.pyplot as plt

    types = [c for c in CAPTION_TYPES if (frame["caption_type"] == c).any()]
    data = [frame.loc[frame["caption_type"] == c, "caption_words"] for c in types]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.boxplot(data, tick_labels=types, showmeans=True)
    for i, ctype in enumerate(types, start=1):
        ax.plot([i - 0.35, i + 0.35], [PAPER_MEDIAN_WORDS[ctype]] * 2, "r--", lw=1.5,
                label="paper median" if i == 1 else None)
    ax.set_yscale("log")
    ax.set_ylabel("words per caption (log)")
    ax.set_title("Caption length by type")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_sizes(frame: Any) -> Any:
    """Scatter of width × height (log) with the 256 px longest-side floor, and an aspect-ratio histogram."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.scatter(frame["img_width"], frame["img_height"], s=14, alpha=0.7)
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ticks_px = [128, 256, 512, 1024, 2048, 4096, 8192]
    for axis in (ax1.xaxis, ax1.yaxis):
        axis.set_major_locator(FixedLocator(ticks_px))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax1.axvline(256, color="r", ls=":", lw=1)
    ax1.axhline(256, color="r", ls=":", lw=1, label="256 px (GPIC keeps longest side ≥ 256)")
    ax1.set_xlabel("width (px)")
    ax1.set_ylabel("height (px)")
    ax1.set_title("Image sizes")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.hist(np.log2(frame["aspect"]), bins=max(5, min(40, len(frame) // 2)))
    ticks = [-2, -1, 0, 1, 2]
    ax2.set_xticks(ticks, ["1:4", "1:2", "1:1", "2:1", "4:1"])
    ax2.set_xlabel("aspect ratio width:height (log scale)")
    ax2.set_ylabel("samples")
    ax2.set_title("Aspect ratios")
    fig.tight_layout()
    return fig


def plot_shard_counts(frame: Any) -> Any:
    """Samples per shard, stacked by caption type."""
    import matplotlib.pyplot as plt

    counts = shard_counts(frame)
    table = counts[[c for c in CAPTION_TYPES if c in counts.columns]]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(table) + 3), 3.5))
    table.plot.bar(stacked=True, ax=ax)
    ax.legend(title="caption type", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylabel("samples")
    ax.set_xlabel("")
    ax.set_title("Samples per shard by caption type")
    ax.tick_params(axis="x", labelrotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig


def image_grid(frame: Any, n: int = 6, seed: int = 0, cols: int = 3, width: int = 48) -> Any:
    """A grid of n random samples, each with its caption type, caption (wrapped, cut) and attribution."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from gpic_lab.shards.reader import read_range

    rows = frame.sample(n=min(n, len(frame)), random_state=seed)
    nrows = max(1, -(-len(rows) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, rows.iterrows(), strict=False):
        data = read_range(row["shard"], int(row["image_offset"]), int(row["image_size"]))
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (320, 240))
            thumb = im.convert("RGB")
        thumb.thumbnail((320, 240))
        canvas = Image.new("RGB", (320, 240), "white")  # letterbox: every panel has the same shape
        canvas.paste(thumb, ((320 - thumb.width) // 2, (240 - thumb.height) // 2))
        ax.imshow(canvas)
        caption = textwrap.shorten(str(row["caption"]), 160, placeholder=" …")
        credit = textwrap.shorten(f"{row['attribution']} · {row['license']}", 70, placeholder=" …")
        text = "\n".join(textwrap.wrap(caption, width)) + "\n" + "\n".join(textwrap.wrap(credit, width))
        ax.set_title(f"[{row['caption_type']}] {row['key'][:10]}", fontsize=9)
        ax.text(0.0, -0.02, text, transform=ax.transAxes, va="top", fontsize=7.5, wrap=True)
    fig.tight_layout()
    return fig
