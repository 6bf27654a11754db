"""GPIC's near-duplicate rule on an embedding graph, exact byte duplicates, and train/test leakage.

Order of the rule (every threshold a parameter, defaults per encoder in ``DEFAULTS``):
1. ``exact-dup``: images with the same SHA-256 of their bytes keep one (the best-ranked) copy.
2. Link every pair with cosine > ``link`` (0.90 for SSCD); connected components of ≥ ``cluster_min`` (5)
   images keep only the best-ranked image: the others get ``cluster>=5``.
3. In the remaining (smaller) components, every pair with cosine > ``near_dup`` (0.9625 for SSCD) drops its
   lower-ranked image: ``near-dup>0.9625``. The kept representative is followed through chains of drops.

"Best-ranked" = most pixels (GPIC keeps the higher resolution), then the smaller key (deterministic). With
``license_aware`` the ranking first prefers a permissive license (``licenses.normalize(...).permissive``).
Every dropped image names its representative (``kept_key``) and ``similarity`` (cosine to it).

What GPIC states (paper §2.3, App. D): SSCD cosine; a graph of pairs > 0.90; for pairs > 0.9625 the lower-resolution
image goes; components of ≥ 5 images keep only the highest-resolution one; afterwards no SHA-256 duplicates remain.
OUR ASSUMPTIONS where it is silent:
- the order: byte duplicates first, then components ≥ 5 (on the graph of > ``link`` pairs), then pairs > ``near_dup``
  inside the smaller components (GPIC lists the pair rule first; both orders keep the same survivor of a
  component ≥ 5, they differ only in which reason a drop is given);
- strict ``>`` for both thresholds (§2.3 says "> 0.9625", App. D "≥ 0.9625"; ties at exactly 0.9625 are
  vanishingly rare in float cosines) and ``≥`` for the component size, as both texts say;
- "resolution" = pixel count width × height, ties broken by the smaller key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from gpic_lab.engine.records import Decision
from gpic_lab.errors import UsageError


@dataclass(frozen=True)
class Rule:
    """Thresholds of the two-tier rule (cosine similarities of one encoder)."""

    link: float = 0.90
    near_dup: float = 0.9625
    cluster_min: int = 5
    license_aware: bool = False

    def __post_init__(self) -> None:
        if not (-1.0 <= self.link <= self.near_dup <= 1.0):
            raise UsageError(f"dedup: need -1 <= link ({self.link}) <= near_dup ({self.near_dup}) <= 1")
        if self.cluster_min < 2:
            raise UsageError(f"dedup: cluster_min must be >= 2 (got {self.cluster_min})")

    @property
    def near_reason(self) -> str:
        return f"near-dup>{self.near_dup:g}"

    @property
    def cluster_reason(self) -> str:
        return f"cluster>={self.cluster_min}"


# Calibrated per encoder (notebooks/04_dedup.ipynb derives the CPU ones from the planted copies; docs/dedup.md).
DEFAULTS: dict[str, Rule] = {
    "sscd": Rule(0.90, 0.9625),  # GPIC's published thresholds
    "sscd-distilled": Rule(0.90, 0.9625),  # GPIC's thresholds kept: the student rates flat look-alikes higher (docs)
    "efficientnet-thumb": Rule(0.80, 0.83),  # CPU default: copies ≥ 0.884 (near-dup = weakest − 0.05), distinct ≤ 0.778
    "efficientnet": Rule(0.75, 0.80),  # planted copies ≥ 0.85 to their original, distinct train images ≤ 0.33
    "dinov2": Rule(0.90, 0.95),  # not calibrated on copies here: a starting point, check the notebook grids
    "phash": Rule(0.8125, 0.875),  # ≤ 6 / ≤ 4 of 64 bits differ; hashes miss crops
    "dhash": Rule(0.8125, 0.875),
}
EXACT_REASON = "exact-dup"


def default_rule(encoder: str, **overrides: Any) -> Rule:
    """The calibrated defaults of an encoder, with any non-None override applied."""
    if encoder not in DEFAULTS:
        raise UsageError(f"dedup: no defaults for encoder {encoder!r}; known: {', '.join(DEFAULTS)}")
    return replace(DEFAULTS[encoder], **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Result:
    """Per row: keep, reason (None when kept), kept index (-1 when kept), similarity to it (nan when kept)."""

    keep: np.ndarray
    reason: np.ndarray
    kept: np.ndarray
    similarity: np.ndarray
    component: np.ndarray
    component_size: np.ndarray

    def counts(self) -> dict[str, int]:
        r = self.reason[~self.keep]
        out = {"kept": int(self.keep.sum())}
        out.update({str(k): int(v) for k, v in zip(*np.unique(r.astype(str), return_counts=True), strict=True)})
        return out


def rank_order(pixels: np.ndarray, keys: np.ndarray, permissive: np.ndarray | None = None) -> np.ndarray:
    """rank[i] (0 = best): permissive first (when given), then most pixels, then the smaller key."""
    cols = [np.asarray(keys).astype(str), -np.asarray(pixels, np.int64)]
    if permissive is not None:
        cols.append(~np.asarray(permissive, bool))
    order = np.lexsort(cols)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _exact_dups(sha: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """best[i]: the index of the best-ranked image with the same bytes (i itself when i is that image)."""
    best = np.arange(len(sha))
    groups: dict[str, int] = {}
    for i in np.argsort(rank, kind="stable"):
        best[i] = groups.setdefault(str(sha[i]), int(i))
    return best


def apply_rule(n: int, pi: np.ndarray, pj: np.ndarray, psim: np.ndarray, rank: np.ndarray, rule: Rule,
               sha256: np.ndarray | None = None) -> Result:
    """Run exact-dup → cluster → near-dup on n images given the pairs (pi, pj, psim) above ``rule.link``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = np.ones(n, bool)
    reason = np.full(n, None, dtype=object)
    kept = np.full(n, -1, np.int64)
    sim = np.full(n, np.nan)
    if sha256 is not None and n:
        best = _exact_dups(np.asarray(sha256), rank)
        dup = best != np.arange(n)
        keep[dup], reason[dup], kept[dup], sim[dup] = False, EXACT_REASON, best[dup], 1.0
    pi, pj, psim = np.asarray(pi, np.int64), np.asarray(pj, np.int64), np.asarray(psim, np.float64)
    live = (psim > rule.link) & keep[pi] & keep[pj]
    pi, pj, psim = pi[live], pj[live], psim[live]
    graph = coo_matrix((np.ones(len(pi)), (pi, pj)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    size = np.bincount(comp, weights=keep.astype(float), minlength=comp.max() + 1 if n else 0).astype(np.int64)
    pair_sim = {(int(a), int(b)): float(s) for a, b, s in zip(pi, pj, psim, strict=True)}
    _cluster_rule(comp, size, keep, reason, kept, sim, rank, rule, pair_sim, pi, pj, psim)
    _pair_rule(pi, pj, psim, comp, size, keep, reason, kept, sim, rank, rule, pair_sim)
    return Result(keep, reason, kept, sim, comp, size[comp] if n else np.zeros(0, np.int64))


def _best_sim(a: int, b: int, pair_sim: Mapping[tuple[int, int], float]) -> float:
    return pair_sim.get((min(a, b), max(a, b)), float("nan"))


def _cluster_rule(comp: np.ndarray, size: np.ndarray, keep: np.ndarray, reason: np.ndarray, kept: np.ndarray,
                  sim: np.ndarray, rank: np.ndarray, rule: Rule, pair_sim: Mapping[tuple[int, int], float],
                  pi: np.ndarray, pj: np.ndarray, psim: np.ndarray) -> None:
    big = np.nonzero(size >= rule.cluster_min)[0]
    if not len(big):
        return
    members = np.nonzero(np.isin(comp, big) & keep)[0]
    for c in big:
        m = members[comp[members] == c]
        best = int(m[np.argmin(rank[m])])
        for i in m:
            if i != best:
                keep[i], reason[i], kept[i] = False, rule.cluster_reason, best
                sim[i] = _best_sim(int(i), best, pair_sim)
    # a member not linked directly to the survivor: report its strongest link inside the component
    missing = np.nonzero(np.isnan(sim) & ~keep & (reason == rule.cluster_reason))[0]
    if len(missing):
        strongest = np.full(len(comp), -np.inf)
        np.maximum.at(strongest, pi, psim)
        np.maximum.at(strongest, pj, psim)
        sim[missing] = strongest[missing]


def _pair_rule(pi: np.ndarray, pj: np.ndarray, psim: np.ndarray, comp: np.ndarray, size: np.ndarray,
               keep: np.ndarray, reason: np.ndarray, kept: np.ndarray, sim: np.ndarray, rank: np.ndarray,
               rule: Rule, pair_sim: Mapping[tuple[int, int], float]) -> None:
    small = (size[comp[pi]] < rule.cluster_min) & (psim > rule.near_dup) if len(pi) else np.zeros(0, bool)
    parent: dict[int, int] = {}
    for a, b in zip(pi[small], pj[small], strict=True):
        lo, hi = (int(a), int(b)) if rank[a] > rank[b] else (int(b), int(a))
        if lo not in parent or rank[hi] < rank[parent[lo]]:
            parent[lo] = hi
    for lo in parent:
        root = lo
        while root in parent:  # every step goes to a strictly better rank: terminates at a survivor
            root = parent[root]
        keep[lo], reason[lo], kept[lo] = False, rule.near_reason, root
        direct = _best_sim(lo, root, pair_sim)
        sim[lo] = direct if not np.isnan(direct) else _best_sim(lo, parent[lo], pair_sim)


def decisions(emb: Any, res: Result, rule: Rule, encoder: str) -> list[Decision]:
    """One Decision per embedded image, with kept_key, similarity and component size as extras."""
    out = []
    for i, key in enumerate(emb.keys.tolist()):
        k = int(res.kept[i])
        out.append(Decision(key, bool(res.keep[i]), None if res.keep[i] else str(res.reason[i]),
                            scores={"dup_similarity": float(res.similarity[i])},
                            extra={"kept_key": None if k < 0 else str(emb.keys[k]),
                                   "similarity": float(res.similarity[i]),
                                   "component_size": int(res.component_size[i]), "encoder": encoder,
                                   "width": int(emb.width[i]), "height": int(emb.height[i])}))
    return out


def permissive_mask(meta: list[Mapping[str, Any]]) -> np.ndarray:
    """licenses.normalize(license, license_url).permissive per record."""
    from gpic_lab.core.licenses import normalize

    return np.array([bool(normalize(m.get("license"), m.get("license_url") or None).permissive) for m in meta], bool)


def dedup_embeddings(emb: Any, rule: Rule, encoder: str, knn_params: Mapping[str, Any] | None = None) -> tuple[Any, Result, Any]:
    """Pairs (knn) + rule on embeddings; returns (decisions DataFrame, Result, Pairs)."""
    from gpic_lab.dedup import knn
    from gpic_lab.engine.records import decisions_frame
    from gpic_lab.engine.stages import one_row_per_key

    pairs = knn.similar_pairs(emb.chunks(), rule.link, **dict(knn_params or {}))
    rank = rank_order(emb.pixels, emb.keys, permissive_mask(emb.meta) if rule.license_aware else None)
    res = apply_rule(len(emb), pairs.i, pairs.j, pairs.sim, rank, rule, emb.sha256)
    meta_by_key = dict(zip(emb.keys.tolist(), emb.meta, strict=True))
    shard_by_key = dict(zip(emb.keys.tolist(), emb.shards.tolist(), strict=True))
    rows = decisions(emb, res, rule, encoder)
    for sk in emb.skipped:  # unreadable images: one row each, never silently dropped from the table
        rows.append(Decision(sk["key"], False, sk["reason"], extra={"detail": sk["detail"], "encoder": encoder}))
        meta_by_key[sk["key"]], shard_by_key[sk["key"]] = sk.get("meta", {}), sk["shard"]
    frame = decisions_frame(rows, "dedup", meta_by_key, shard_by_key)
    if len(frame):  # per row, not per key: one key may sit in two shards
        frame["shard"] = [*emb.shards.tolist(), *(sk["shard"] for sk in emb.skipped)]
    # One row per key (the decisions contract). The same key twice means the same bytes twice (GPIC keys are the
    # SHA-256 of the image): keep its kept row, so the image survives once.
    frame, duplicates = one_row_per_key(frame, prefer_kept=True)
    frame.attrs["duplicate_keys"] = duplicates
    return frame, res, pairs


def leakage(train: Any, held_out: Any, threshold: float) -> Any:
    """Train images with cosine > threshold to a test/val image (or identical bytes), most similar first."""
    import pandas as pd

    from gpic_lab.dedup import knn

    pairs = knn.cross_pairs(train.chunks(), np.concatenate(list(held_out.chunks()())), threshold)
    rows = [{"train_key": str(train.keys[i]), "train_shard": str(train.shards[i]),
             "heldout_key": str(held_out.keys[j]), "heldout_shard": str(held_out.shards[j]), "similarity": float(s),
             "same_bytes": bool(train.sha256[i] == held_out.sha256[j])}
            for i, j, s in zip(pairs.i.tolist(), pairs.j.tolist(), pairs.sim.tolist(), strict=True)]
    held_sha = {str(s): str(k) for s, k in zip(held_out.sha256, held_out.keys, strict=True)}
    seen = {(r["train_key"], r["heldout_key"]) for r in rows}
    for i, s in enumerate(train.sha256.tolist()):
        if s in held_sha and (str(train.keys[i]), held_sha[s]) not in seen:
            rows.append({"train_key": str(train.keys[i]), "train_shard": str(train.shards[i]),
                         "heldout_key": held_sha[s], "heldout_shard": "", "similarity": 1.0, "same_bytes": True})
    cols = ["train_key", "train_shard", "heldout_key", "heldout_shard", "similarity", "same_bytes"]
    return pd.DataFrame(rows, columns=cols).sort_values("similarity", ascending=False, ignore_index=True)


def rule_dict(rule: Rule) -> dict[str, Any]:
    """The rule as JSON-able parameters (for summaries and run records)."""
    return asdict(rule)


def run_dedup(paths: list[str], decisions_path: str | Any, encoder: str = "sscd", weights: str | None = None,
              rule: Rule | None = None, against: list[str] | None = None, cache_dir: str | None = None,
              knn_params: Mapping[str, Any] | None = None, leak_threshold: float | None = None,
              progress: bool | str = False, device: str | None = None, dtype: str | None = None) -> dict[str, Any]:
    """Embed (cached per shard), search, apply the rule and write the decisions and their companions.

    Next to DECISIONS (``<stem>.`` prefix unless it is named ``decisions.parquet``, the stage layout): counts.csv,
    summary.json and, with ``against``, leakage.csv + leakage_keys.json (train keys for a FiftyOne view:
    ``dataset.match(F("key").is_in(keys))``). Embeddings are cached per shard in cache_dir
    (default: ``paths.state_root()/embed_cache``).
    """
    import os
    import time
    from pathlib import Path

    from gpic_lab.dedup import embed, embed_cache
    from gpic_lab.engine.records import reason_counts
    from gpic_lab.engine.stages import unique_shards
    from gpic_lab.fsio import atomic_path, write_json_atomic, write_parquet_atomic
    from gpic_lab.paths import state_root

    t0 = time.perf_counter()
    rule = rule or default_rule(encoder)
    shards = unique_shards(paths)
    if not shards:
        raise UsageError(f"dedup: no shards under {', '.join(map(str, paths))}")
    held_shards = unique_shards(against) if against else []
    both = sorted({os.path.realpath(s) for s in shards} & {os.path.realpath(s) for s in held_shards})
    if both:
        raise UsageError(f"dedup: {both[0]} is both a PATH and an --against shard; held-out shards go only after --against")
    dest = Path(decisions_path)
    pre = "" if dest.name == "decisions.parquet" else dest.name.removesuffix(".parquet") + "."
    cache = Path(cache_dir) if cache_dir else state_root() / "embed_cache"
    enc = embed.load_encoder(encoder, weights, device, dtype)
    emb, cache_stats = embed_cache.embed_shards(shards, enc, cache, progress=progress, load_vectors=False)
    from gpic_lab.progress import log

    log(__name__).info("dedup: %d images embedded; searching pairs above %.4g", len(emb), rule.link)
    frame, res, pairs = dedup_embeddings(emb, rule, encoder, {"progress": progress, **dict(knn_params or {})})
    log(__name__).info("dedup: %d pairs above the link threshold; writing %s", len(pairs), dest)
    write_parquet_atomic(dest, frame)
    with atomic_path(dest.with_name(pre + "counts.csv")) as tmp:
        reason_counts(frame).to_csv(tmp, index=False)
    summary: dict[str, Any] = {"stage": "dedup", "encoder": encoder, "model": enc.info.get("model", encoder),
                               "cache_id": enc.cache_id(), "rule": rule_dict(rule),
                               "shards": len(shards), "images": len(emb), "pairs_above_link": len(pairs),
                               "knn": pairs.info, "counts": _frame_counts(frame), "unreadable": len(emb.skipped),
                               "duplicate_keys": frame.attrs.get("duplicate_keys", 0), **cache_stats}
    if against:
        held, _ = embed_cache.embed_shards(held_shards, enc, cache, progress=progress)
        leaks = leakage(emb, held, rule.link if leak_threshold is None else leak_threshold)
        with atomic_path(dest.with_name(pre + "leakage.csv")) as tmp:
            leaks.to_csv(tmp, index=False)
        write_json_atomic(dest.with_name(pre + "leakage_keys.json"), {"field": "key", "keys": sorted(set(leaks["train_key"])),
                                                      "view": 'dataset.match(F("key").is_in(keys))'})
        summary["leakage_pairs"] = len(leaks)
        summary["leakage_csv"] = str(dest.with_name(pre + "leakage.csv"))
        summary["leaked_train_images"] = int(leaks["train_key"].nunique())
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    write_json_atomic(dest.with_name(pre + "summary.json"), summary)
    return summary


def _frame_counts(frame: Any) -> dict[str, int]:
    """Rows per reason of the written decisions, ``kept`` first."""
    counts = frame["reason"].fillna("kept").value_counts() if len(frame) else {}
    return {"kept": int(counts.get("kept", 0)), **{str(k): int(v) for k, v in counts.items() if k != "kept"}}
