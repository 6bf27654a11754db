"""Tables for exploring a set of GPIC shards (notebook 01), built on a catalog DataFrame, and a grid of samples.

Every table function takes the DataFrame of `load_catalog` (or a catalog Parquet file read with pandas and passed
through `with_derived`); nothing here reads images except `image_grid`. The same tables out of core:
``explore_lazy``; figures drawn from either: ``explore_figures``.
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
    return with_derived(table.to_pandas()), problems


def with_derived(frame: Any) -> Any:
    """Add the columns the tables use to a catalog DataFrame (in place; returned): ``caption_words``
    (`caption_words` of each caption), ``aspect``, ``megapixels`` and ``shard_name`` (the shard's file name)."""
    frame["caption_words"] = frame["caption"].astype(str).str.count(r"[^\s,]+").astype("int64")
    frame["aspect"] = frame["img_width"] / frame["img_height"]
    frame["megapixels"] = frame["img_width"] * frame["img_height"] / 1e6
    frame["shard_name"] = frame["shard"].astype(str).str.rsplit("/", n=1).str[-1]
    return frame


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
