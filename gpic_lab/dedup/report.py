"""Tables and figures of notebook 04 (near-duplicate calibration): similarity histogram, pair grids per GPIC
similarity bin, cluster sizes, before/after counts, threshold calibration and scores against the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# GPIC's similarity bins (SSCD cosine), used for the pair grids
GPIC_BINS: tuple[tuple[float, float], ...] = ((0.75, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 0.9625),
                                              (0.9625, 0.999), (0.999, 1.0001))


def all_pairs(emb: Any, floor: float = -1.0, max_images: int = 4000) -> Any:
    """Every pair (i < j) with its cosine (small sets), or each image's nearest neighbour above ``floor``."""
    import pandas as pd

    x = emb.vectors
    if len(x) <= max_images:
        s = x @ x.T
        i, j = np.triu_indices(len(x), 1)
        sims = s[i, j]
    else:
        from gpic_lab.dedup import knn

        p = knn.similar_pairs(x, max(floor, 0.5))
        i, j, sims = p.i, p.j, p.sim
    keep = sims > floor
    return pd.DataFrame({"a": emb.keys[i[keep]], "b": emb.keys[j[keep]], "similarity": sims[keep].astype(float),
                         "ia": i[keep], "ib": j[keep]}).sort_values("similarity", ascending=False, ignore_index=True)


def plot_histogram(pairs: Any, rule: Any, encoder: str) -> Any:
    """Histogram of pair similarities (log counts), GPIC's bins shaded, the rule's thresholds as lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.hist(pairs["similarity"], bins=np.linspace(-0.2, 1.0, 121), color="#4477aa", log=True)
    for k, (lo, hi) in enumerate(GPIC_BINS):
        ax.axvspan(lo, min(hi, 1.0), color="orange" if k % 2 else "gold", alpha=0.15)
    ax.axvline(rule.link, color="k", ls="--", lw=1, label=f"link > {rule.link:g}")
    ax.axvline(rule.near_dup, color="crimson", ls="-", lw=1, label=f"near-dup > {rule.near_dup:g}")
    ax.set(xlabel=f"cosine similarity ({encoder})", ylabel="pairs (log)",
           title="All pair similarities; shaded: GPIC's bins 0.75 / 0.85 / 0.9 / 0.95 / 0.9625 / 0.999")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def bin_counts(pairs: Any) -> Any:
    """Pairs per GPIC similarity bin."""
    import pandas as pd

    rows = [{"bin": f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}",
             "pairs": int(((pairs["similarity"] >= lo) & (pairs["similarity"] < hi)).sum())} for lo, hi in GPIC_BINS]
    return pd.DataFrame(rows)


def _thumb(index: Any, key: str, size: int = 160) -> np.ndarray:
    img = index.get(key).open_image().convert("RGB")
    img.thumbnail((size, size))
    canvas = np.full((size, size, 3), 255, np.uint8)
    a = np.asarray(img)
    canvas[: a.shape[0], : a.shape[1]] = a
    return canvas


def plot_bin_grid(pairs: Any, shards: Sequence[str | Path], per_bin: int = 3, size: int = 140) -> Any:
    """One row per GPIC bin: up to per_bin pairs side by side (left | right, similarity and sizes above)."""
    import matplotlib.pyplot as plt

    from gpic_lab.shards.reader import ShardIndex, list_shards

    index = ShardIndex.build([str(p) for p in list_shards(shards)])
    fig, axes = plt.subplots(len(GPIC_BINS), per_bin, figsize=(3.2 * per_bin, 1.75 * len(GPIC_BINS)), squeeze=False)
    for r, (lo, hi) in enumerate(GPIC_BINS):
        sel = pairs[(pairs["similarity"] >= lo) & (pairs["similarity"] < hi)].head(per_bin)
        for c in range(per_bin):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(sel):
                row = sel.iloc[c]
                ax.imshow(np.concatenate([_thumb(index, row["a"], size), np.full((size, 6, 3), 255, np.uint8),
                                          _thumb(index, row["b"], size)], axis=1))
                ax.set_title(f"{row['similarity']:.4f}  {row['a'][:6]}|{row['b'][:6]}", fontsize=7)
            elif c == 0:
                ax.text(0.0, 0.5, "no pairs in this bin", fontsize=9, color="grey", transform=ax.transAxes)
        axes[r][0].text(-0.08, 0.5, f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}", rotation=90, fontsize=9,
                        va="center", ha="right", transform=axes[r][0].transAxes)
    fig.suptitle("Most similar pairs per GPIC similarity bin", fontsize=10)
    fig.tight_layout()
    return fig


def cluster_sizes(decisions: Any) -> Any:
    """Components (of the link graph) by size: how many, and how many images they hold."""
    sizes = decisions.drop_duplicates("component_id")["component_size"] if "component_id" in decisions else None
    comp = decisions.groupby(decisions["kept_key"].fillna(decisions["key"]))["key"].size() if sizes is None else sizes
    table = comp.value_counts().sort_index().rename("components").reset_index()
    table.columns = ["size", "components"]
    table["images"] = table["size"] * table["components"]
    return table


def plot_cluster_sizes(table: Any, cluster_min: int) -> Any:
    """Bar chart of duplicate-group sizes (a kept image plus the copies that point to it)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    colors = ["crimson" if s >= cluster_min else "#4477aa" for s in table["size"]]
    bars = ax.bar(table["size"].astype(str), table["components"], color=colors)
    ax.bar_label(bars, fontsize=8)
    ax.set(xlabel="group size (kept image + its removed copies)", ylabel="groups",
           yscale="log" if table["components"].max() > 100 else "linear",
           title=f"Duplicate groups (red: ≥ {cluster_min}, the cluster rule)")
    if ax.get_yscale() == "linear":
        ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def before_after(decisions: Any) -> Any:
    """Images per license family × source before and after dedup."""
    g = decisions.groupby(["license_family", "source"])
    table = g.size().rename("before").to_frame().join(g["keep"].sum().rename("after"))
    table["removed"] = table["before"] - table["after"]
    return table.reset_index()


def calibration(emb: Any, ground_truth: str | Path) -> Any:
    """Similarity of every planted copy to its original, and the most similar pair of distinct images."""
    import pandas as pd

    gt = pd.read_csv(ground_truth)
    gt = gt[gt["kind"] == "near-dup"]
    pos = {k: i for i, k in enumerate(emb.keys.tolist())}
    rows = [{"label": r.label, "copy": r.key, "similarity": float(emb.vectors[pos[r.key]] @ emb.vectors[pos[o]])}
            for r in gt.itertuples() if r.key in pos and (o := r.detail.removeprefix("of:")) in pos]
    group = {r.key: r.detail.removeprefix("of:") for r in gt.itertuples()}
    root = np.array([group.get(k, k) for k in emb.keys.tolist()])
    s = emb.vectors @ emb.vectors.T
    distinct = (root[:, None] != root[None, :])
    best = float(s[distinct].max()) if distinct.any() else float("nan")
    rows.append({"label": "max over distinct images", "copy": "", "similarity": best})
    return pd.DataFrame(rows)


def suggest_thresholds(calib: Any, margin: float = 0.05) -> dict[str, float]:
    """near_dup = (weakest planted copy − margin), link = near_dup − margin, both above the distinct maximum."""
    copies = calib[calib["copy"] != ""]["similarity"]
    distinct = float(calib[calib["copy"] == ""]["similarity"].iloc[0])
    near = round(float(copies.min()) - margin, 3)
    return {"weakest_copy": float(copies.min()), "max_distinct": distinct, "near_dup": near,
            "link": round(near - margin, 3), "separable": bool(near - margin > distinct)}


def score_against_truth(decisions: Any, ground_truth: str | Path, calib: Any = None,
                        near_dup: float | None = None) -> dict[str, Any]:
    """Precision/recall of drops vs planted near-duplicates, and whether each survivor is the planted original.

    With ``calib`` (from ``calibration``) and ``near_dup``: how many planted copies score above the pair threshold
    against their original (``above_near_dup``) and how many of those were dropped (``above_near_dup_dropped``):
    GPIC's rule must drop each of them; a copy below it (e.g. a crop) is dropped only inside a component ≥ 5."""
    import pandas as pd

    gt = pd.read_csv(ground_truth)
    planted = gt[gt["kind"] == "near-dup"].set_index("key")["detail"].str.removeprefix("of:")
    planted = planted[planted.index.isin(decisions["key"])]
    dropped = decisions[~decisions["keep"]].set_index("key")
    hit = dropped.index.isin(planted.index)
    right = [dropped.loc[k, "kept_key"] == planted[k] for k in planted.index if k in dropped.index]
    out = {"planted": int(len(planted)), "dropped": int(len(dropped)), "true_drops": int(hit.sum()),
           "precision": float(hit.mean()) if len(dropped) else 1.0,
           "recall": float(hit.sum() / len(planted)) if len(planted) else 1.0,
           "right_survivor": int(sum(right)), "distinct_dropped": int((~hit).sum())}
    if calib is not None and near_dup is not None:
        above = set(calib.loc[(calib["copy"] != "") & (calib["similarity"] > near_dup), "copy"]) & set(planted.index)
        out["above_near_dup"] = len(above)
        out["above_near_dup_dropped"] = len(above & set(dropped.index))
    return out


def agreement(a: Any, b: Any, name_a: str, name_b: str) -> dict[str, Any]:
    """How two encoders' dedup runs on the same images agree: decisions (keep and reason) per key, the correlation
    of their pair similarities, and the keys they decide differently. ``a``/``b``: (decisions, embeddings)."""
    (da, ea), (db, eb) = a, b
    merged = da[["key", "keep", "reason"]].merge(db[["key", "keep", "reason"]], on="key", suffixes=("_a", "_b"))
    same_keep = merged["keep_a"] == merged["keep_b"]
    pos = {k: i for i, k in enumerate(eb.keys.tolist())}
    order = np.array([pos[k] for k in ea.keys.tolist()])
    sa, sb = ea.vectors @ ea.vectors.T, eb.vectors[order] @ eb.vectors[order].T
    i, j = np.triu_indices(len(order), 1)
    return {"encoders": f"{name_a} vs {name_b}", "images": int(len(merged)), "same_keep": int(same_keep.sum()),
            "differ": merged.loc[~same_keep, "key"].tolist(),
            "pair_similarity_pearson": float(np.corrcoef(sa[i, j], sb[i, j])[0, 1]) if len(i) > 1 else float("nan"),
            "max_abs_similarity_difference": float(np.abs(sa[i, j] - sb[i, j]).max()) if len(i) else 0.0}
