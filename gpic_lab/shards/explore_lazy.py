"""Notebook 01's tables from a catalog Parquet through polars lazy scans: memory stays flat in the number of rows.

``scan(catalog)`` is a ``polars.LazyFrame`` over the catalog file(s) with the derived columns of ``explore``
(``caption_words``, ``aspect``, ``megapixels``, ``longest_side``, ``shard_name``); every table here is a small
aggregate computed by polars' streaming engine, so a 100 M-row catalog is explored in the memory of its largest
row group plus the aggregates. The tables equal ``explore``'s pandas ones (same rows, columns and definitions):

- quantiles are exact (linear interpolation, as pandas): a histogram of 65,536 equal-width bins locates the bin of
  each order statistic, then only that bin's values are read and sorted;
- key uniqueness is counted per key-hash bucket (``gpic_lab.shards.buckets``).

Figures from these tables: ``gpic_lab.shards.explore_figures``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.shards.explore import PAPER_MEDIAN_WORDS, TARGET_MIX
from gpic_lab.shards.schema import CAPTION_TYPES

BINS = 65536
SIZE_COLUMNS = ("img_width", "img_height", "aspect", "megapixels", "image_bytes", "longest_side")
QUANTILES = (0.05, 0.5, 0.95)
WORDS = r"[^\s,]+"  # explore.caption_words: split on whitespace after replacing commas with spaces


def scan(catalog: str | Path | Sequence[str | Path]) -> Any:
    """A LazyFrame over catalog Parquet file(s) with the derived columns of ``explore.load_catalog``."""
    import polars as pl

    files = [str(p) for p in ([catalog] if isinstance(catalog, str | Path) else catalog)]
    w, h = pl.col("img_width"), pl.col("img_height")
    return pl.scan_parquet(files).with_columns(
        caption_words=pl.col("caption").str.count_matches(WORDS).cast(pl.Int64),
        aspect=w.cast(pl.Float64) / h.cast(pl.Float64), megapixels=(w * h).cast(pl.Float64) / 1e6,
        longest_side=pl.max_horizontal(w, h), shard_name=pl.col("shard").str.split("/").list.last(),
        license_family=pl.when(pl.col("license_family") == "").then(pl.lit("unknown"))
        .otherwise(pl.col("license_family")),
        source=pl.when(pl.col("source") == "").then(pl.lit("other")).otherwise(pl.col("source")))


def collect(lf: Any) -> Any:
    """Run a lazy query on the streaming engine; a pandas frame."""
    return lf.collect(engine="streaming").to_pandas()


def overview(lf: Any) -> dict[str, int]:
    """Rows and shards."""
    import polars as pl

    rows = int(collect(lf.select(pl.len()))["len"].iloc[0])
    shards = len(collect(lf.group_by("shard").agg(pl.len())))
    return {"samples": rows, "shards": shards}


def license_table(lf: Any) -> Any:
    """Samples per license family × source, with totals (``explore.license_table``)."""
    import pandas as pd
    import polars as pl

    counts = collect(lf.group_by("license_family", "source").agg(pl.len()))
    table = counts.pivot_table(index="license_family", columns="source", values="len", aggfunc="sum", fill_value=0)
    table = table.sort_index().reindex(sorted(table.columns), axis=1)
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    table.index.name, table.columns.name = "license_family", "source"
    return table.astype("int64") if len(table) else pd.DataFrame()


def caption_mix(lf: Any) -> Any:
    """Caption-type counts and shares against GPIC's 1/45/45/9 target (``explore.caption_mix``)."""
    import pandas as pd
    import polars as pl

    counts = collect(lf.group_by("caption_type").agg(pl.len())).set_index("caption_type")["len"]
    n = max(int(counts.sum()), 1)
    rows = []
    for ctype in CAPTION_TYPES:
        share, target = counts.get(ctype, 0) / n, TARGET_MIX[ctype]
        stderr = (target * (1 - target) / n) ** 0.5
        rows.append({"caption_type": ctype, "count": int(counts.get(ctype, 0)), "share": share, "target": target,
                     "z": (share - target) / stderr if stderr else 0.0})
    return pd.DataFrame(rows).set_index("caption_type")


def word_counts(lf: Any) -> Any:
    """Samples per (caption_type, caption_words): the exact distribution behind the caption-length table."""
    import polars as pl

    return collect(lf.group_by("caption_type", "caption_words").agg(pl.len()).sort("caption_type", "caption_words"))


def quantile_from_counts(values: Any, counts: Any, q: float) -> float:
    """Linear-interpolated quantile (pandas' default) of sorted ``values`` repeated ``counts`` times."""
    import numpy as np

    cum = np.cumsum(counts)
    h = (cum[-1] - 1) * q
    lo, frac = int(math.floor(h)), h - math.floor(h)
    v_lo = values[np.searchsorted(cum, lo, side="right")]
    v_hi = values[np.searchsorted(cum, min(lo + 1, cum[-1] - 1), side="right")]
    return float(v_lo + frac * (v_hi - v_lo))


def caption_lengths(lf: Any, counts: Any = None) -> Any:
    """Words per caption by type: count, median, mean, p5, p95 and the paper's medians (``explore.caption_lengths``)."""
    import numpy as np
    import pandas as pd

    counts = word_counts(lf) if counts is None else counts
    rows = {}
    for ctype in CAPTION_TYPES:
        part = counts[counts["caption_type"] == ctype]
        if not len(part):
            continue
        v, c = part["caption_words"].to_numpy(dtype=float), part["len"].to_numpy(dtype=np.int64)
        rows[ctype] = {"count": int(c.sum()), "median": quantile_from_counts(v, c, 0.5), "mean": float((v * c).sum() / c.sum()),
                       "p5": quantile_from_counts(v, c, 0.05), "p95": quantile_from_counts(v, c, 0.95)}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("caption_type")
    table["paper_median"] = [PAPER_MEDIAN_WORDS[c] for c in table.index]
    table["median_vs_paper"] = table["median"] / table["paper_median"]
    return table


def exact_quantiles(lf: Any, column: str, qs: Sequence[float], bins: int = BINS) -> list[float]:
    """Exact linear-interpolated quantiles of a numeric column in two streaming passes (bins, then one bin's values)."""
    import numpy as np
    import polars as pl

    col = pl.col(column).cast(pl.Float64)
    stats = collect(lf.select(lo=col.min(), hi=col.max(), n=col.count())).iloc[0]
    n, lo, hi = int(stats["n"]), float(stats["lo"]), float(stats["hi"])
    if n == 0:
        return [math.nan] * len(qs)
    if lo == hi:
        return [lo] * len(qs)
    b = ((col - lo) / ((hi - lo) / bins)).floor().clip(0, bins - 1).cast(pl.Int64).alias("_bin")
    hist = collect(lf.select(b).group_by("_bin").agg(pl.len()).sort("_bin"))
    bin_ids, cum = hist["_bin"].to_numpy(), np.cumsum(hist["len"].to_numpy())
    ranks = sorted({r for q in qs for r in _ranks(n, q)})
    where = {r: int(np.searchsorted(cum, r, side="right")) for r in ranks}
    values: dict[int, float] = {}
    for i in sorted(set(where.values())):
        inside = np.sort(collect(lf.filter(b == int(bin_ids[i])).select(col.alias("v")))["v"].to_numpy())
        before = int(cum[i - 1]) if i else 0
        values.update({r: float(inside[r - before]) for r, j in where.items() if j == i})
    out = []
    for q in qs:
        r_lo, r_hi = _ranks(n, q)
        frac = (n - 1) * q - r_lo
        out.append(values[r_lo] + frac * (values[r_hi] - values[r_lo]))
    return out


def _ranks(n: int, q: float) -> tuple[int, int]:
    lo = int(math.floor((n - 1) * q))
    return lo, min(lo + 1, n - 1)


def size_table(lf: Any) -> Any:
    """count, mean, std, min, 5%, 50%, 95%, max of sizes, aspect, megapixels, bytes (``explore.size_table``)."""
    import pandas as pd
    import polars as pl

    aggs = [e for c in SIZE_COLUMNS for e in (pl.col(c).count().alias(f"{c}|count"), pl.col(c).mean().alias(f"{c}|mean"),
                                              pl.col(c).std().alias(f"{c}|std"), pl.col(c).min().alias(f"{c}|min"),
                                              pl.col(c).max().alias(f"{c}|max"))]
    stats = collect(lf.select(aggs)).iloc[0]
    rows = {}
    for c in SIZE_COLUMNS:
        q = exact_quantiles(lf, c, QUANTILES)
        rows[c] = {"count": float(stats[f"{c}|count"]), "mean": float(stats[f"{c}|mean"]),
                   "std": float(stats[f"{c}|std"]), "min": float(stats[f"{c}|min"]), "5%": q[0], "50%": q[1],
                   "95%": q[2], "max": float(stats[f"{c}|max"])}
    return pd.DataFrame.from_dict(rows, orient="index")


def shard_counts(lf: Any) -> Any:
    """Samples per shard with caption-type and source breakdown (``explore.shard_counts``)."""
    import polars as pl

    by_type = collect(lf.group_by("shard_name", "caption_type").agg(pl.len()))
    by_source = collect(lf.group_by("shard_name", "source").agg(pl.len()))
    types = by_type.pivot_table(index="shard_name", columns="caption_type", values="len", aggfunc="sum", fill_value=0)
    sources = by_source.pivot_table(index="shard_name", columns="source", values="len", aggfunc="sum",
                                    fill_value=0).add_prefix("source_")
    table = types.join(sources).astype("int64")
    table.insert(0, "samples", types.sum(axis=1).astype("int64"))
    table.columns.name = None
    return table.sort_index()


def size_counts(lf: Any) -> Any:
    """Samples per distinct (img_width, img_height): what the size scatter and aspect histogram are drawn from."""
    import polars as pl

    return collect(lf.group_by("img_width", "img_height").agg(pl.len()))


def sample_rows(catalog: str | Path, n: int, seed: int = 0) -> Any:
    """``n`` random catalog rows (seeded) as a pandas frame, read by row index (for ``explore.image_grid``)."""
    import numpy as np
    import polars as pl

    lf = scan(catalog)
    rows = overview(lf)["samples"]
    picked = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, rows), replace=False)).tolist()
    return collect(lf.with_row_index("_row").filter(pl.col("_row").is_in(picked)).drop("_row"))
