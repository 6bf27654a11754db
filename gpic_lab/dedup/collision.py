"""The collision model: how many images the rule removes as the corpus grows, extrapolated to GPIC's 110M.

As in GPIC's analysis: run the rule on nested random subsets of sizes N₁ < N₂ < … ≤ N, count removals D(N) per
threshold, fit D(N) = A·N^β by least squares in log–log space, and extrapolate to ``target`` images. Repeating
with independent random orders (``repeats``) gives a spread of fits; the band is its 5–95 % range. Pairs are
computed once over the whole set at the lowest threshold: a subset's pairs are those with both ends inside it.

Survivor rule: GPIC's collision model keeps "the highest-resolution image per connected component" of the graph of
pairs above θ, so by default (``cluster_min=2``) every component keeps exactly one image and D(N) = N − number of
components. OUR ASSUMPTIONS: the graph holds every pair above θ (GPIC links FAISS nearest neighbours; a range search
finds the same pairs when every neighbour list is long enough), "resolution" = pixel count, ties by the smaller key;
GPIC's fitted (A, β) are not published, only its projection at θ = 0.95 (9.62 × 10^6 removals of 110M).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpic_lab.dedup.rule import Rule, apply_rule

GPIC_IMAGES = 110_000_000


@dataclass
class CollisionFit:
    """Per threshold: measured D(N) table, fitted (A, β) per repeat, and the extrapolation with its band."""

    table: Any  # DataFrame: threshold, repeat, n, removed
    fits: Any  # DataFrame: threshold, A, beta, projected, low, high, points
    target: int


def removals(n: int, pi: np.ndarray, pj: np.ndarray, psim: np.ndarray, rank: np.ndarray, subset: np.ndarray,
             threshold: float, cluster_min: int = 2) -> int:
    """Images removed inside one subset of row indices: components of ≥ ``cluster_min`` images on pairs above
    ``threshold`` keep their best image (2: every component keeps one, as GPIC's collision model); pairs above it
    in smaller components drop their lower-ranked image."""
    inside = np.zeros(n, bool)
    inside[subset] = True
    m = inside[pi] & inside[pj] & (psim > threshold)
    local = np.full(n, -1, np.int64)
    local[subset] = np.arange(len(subset))
    res = apply_rule(len(subset), local[pi[m]], local[pj[m]], psim[m], rank[subset],
                     Rule(threshold, threshold, cluster_min))
    return int((~res.keep).sum())


def measure(n: int, pi: np.ndarray, pj: np.ndarray, psim: np.ndarray, rank: np.ndarray,
            thresholds: Sequence[float], fractions: Sequence[float] = (0.125, 0.25, 0.5, 1.0), repeats: int = 5,
            cluster_min: int = 2, seed: int = 0) -> Any:
    """D(N) for nested random subsets (one random order per repeat; fractions of n) and every threshold."""
    import pandas as pd

    rows = []
    rng = np.random.default_rng(seed)
    for rep in range(repeats):
        order = rng.permutation(n)
        for frac in sorted(fractions):
            subset = np.sort(order[: max(1, int(round(frac * n)))])
            for t in thresholds:
                rows.append({"threshold": float(t), "repeat": rep, "n": len(subset),
                             "removed": removals(n, pi, pj, psim, rank, subset, t, cluster_min)})
    return pd.DataFrame(rows)


def fit_power_law(ns: np.ndarray, ds: np.ndarray) -> tuple[float, float]:
    """(A, β) of D = A·N^β from points with D > 0 (NaN when fewer than two such points)."""
    ok = ds > 0
    if ok.sum() < 2 or len(np.unique(ns[ok])) < 2:
        return float("nan"), float("nan")
    beta, log_a = np.polyfit(np.log(ns[ok]), np.log(ds[ok]), 1)
    return float(np.exp(log_a)), float(beta)


def collision_model(table: Any, target: int = GPIC_IMAGES) -> CollisionFit:
    """Fit per threshold (pooled points for the central estimate, one fit per repeat for the 5–95 % band)."""
    import pandas as pd

    out = []
    for t, g in table.groupby("threshold"):
        a, beta = fit_power_law(g["n"].to_numpy(float), g["removed"].to_numpy(float))
        per = [fit_power_law(r["n"].to_numpy(float), r["removed"].to_numpy(float)) for _, r in g.groupby("repeat")]
        proj = np.minimum([pa * target**pb for pa, pb in per if np.isfinite(pa)], target)
        central = min(a * target**beta, target) if np.isfinite(a) else np.nan
        out.append({"threshold": t, "A": a, "beta": beta, "projected": central,
                    "low": float(np.percentile(proj, 5)) if len(proj) else np.nan,
                    "high": float(np.percentile(proj, 95)) if len(proj) else np.nan,
                    "points": int((g["removed"] > 0).sum())})
    fits = pd.DataFrame(out)
    fits["projected_share"] = fits["projected"] / target  # projections are capped at D = N (every image)
    return CollisionFit(table, fits, target)


def figure(fit: CollisionFit, title: str = "Collision model: removals D(N) = A·N^β") -> Any:
    """Log–log D(N) per threshold (points: measured, line: fit, band: 5–95 % of per-repeat fits) up to target."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    n_max = fit.table["n"].max()
    grid = np.logspace(np.log10(max(fit.table["n"].min(), 1)), np.log10(fit.target), 60)
    colors = plt.cm.viridis(np.linspace(0, 0.85, max(len(fit.fits), 1)))
    for color, row in zip(colors, fit.fits.itertuples(), strict=False):
        pts = fit.table[(fit.table["threshold"] == row.threshold) & (fit.table["removed"] > 0)]
        ax.scatter(pts["n"], pts["removed"], s=14, color=color, alpha=0.6)
        if np.isfinite(row.A):
            ax.plot(grid, np.minimum(row.A * grid**row.beta, grid), color=color,
                    label=f"cos > {row.threshold:g}: β={row.beta:.2f}, 110M → {row.projected:,.0f}")
            if np.isfinite(row.low) and row.projected > 0:
                ext = grid[grid >= n_max]
                ax.fill_between(ext, _band(ext, row, n_max, fit.target, row.low),
                                _band(ext, row, n_max, fit.target, row.high), color=color, alpha=0.15)
        else:
            ax.plot([], [], color=color, label=f"cos > {row.threshold:g}: too few removals to fit")
    ax.plot(grid, grid, color="grey", ls="--", lw=1, label="ceiling D = N (projections are capped here)")
    ax.axvline(fit.target, color="grey", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="images N", ylabel="images removed D(N)", title=title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def _band(grid: np.ndarray, row: Any, n_max: float, target: float, edge: float) -> np.ndarray:
    """The central fit scaled geometrically from 1 at the largest measured N to edge/projected at target."""
    central = row.A * grid**row.beta
    w = np.log(grid / n_max) / np.log(target / n_max) if target > n_max else np.ones_like(grid)
    uncapped = min(row.A * target**row.beta, target) if np.isfinite(row.A) else row.projected
    return np.minimum(central * (max(edge, 1e-9) / max(uncapped, 1e-9)) ** w, grid)


def inputs(emb: Any = None, synthetic_n: int = 0, floor: float = 0.85, seed: int = 0) -> dict[str, Any]:
    """Pairs above ``floor`` and a rank for the collision model: from a corpus's embeddings (notebook 04: real SSCD
    embeddings of images and generated copies, ``dedup.copies``), or from synthetic planted vectors
    (``knn.planted_chunk``, random resolutions) when synthetic_n > 0 (tests only)."""
    from gpic_lab.dedup import knn
    from gpic_lab.dedup.rule import rank_order

    if synthetic_n > 0:
        x = knn.planted_embeddings(synthetic_n, 512, seed=seed)
        pixels = np.random.default_rng(seed).integers(100_000, 4_000_000, synthetic_n)
        keys = np.char.zfill(np.arange(synthetic_n).astype(str), 9)
        source = f"synthetic planted embeddings (n={synthetic_n}, 512-d)"
    else:
        x, pixels, keys, source = emb.vectors, emb.pixels, emb.keys, f"corpus embeddings (n={len(emb)})"
    pairs = knn.similar_pairs(x, floor)
    return {"n": len(x), "pi": pairs.i, "pj": pairs.j, "psim": pairs.sim, "rank": rank_order(pixels, keys),
            "source": source}
