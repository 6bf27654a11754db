"""Precision/recall/density/coverage (Naeem et al., clovaai/dgm-eval) and polynomial-kernel MMD, seeded.

PRDC: Euclidean distances; each point's radius is the distance to its k-th nearest neighbour within its own set
(self excluded); precision = fraction of fakes inside any real ball; recall = fraction of reals inside any fake
ball; density = mean over fakes of (number of real balls containing it) / k; coverage = fraction of reals whose
nearest fake lies inside their own ball. GPIC/dgm-eval: k = 5 on at most 10,000 points per side.
MMD: unbiased MMD² with k(x, y) = (γ<x, y> + 1)³, γ = 1/dim, averaged over 100 random subsets of 1,000 per side.
OUR ASSUMPTION: the paper names PRDC and MMD but not their settings; k = 5, the 10,000-point cap and the MMD kernel and
subsets are those of a third-party port of GPIC's toolkit (dgm-eval's defaults), and our subsets are drawn with a
seed (the port draws without one).
"""
from __future__ import annotations

import numpy as np

from gpic_lab.errors import UsageError

NEAREST_K = 5
MAX_PRDC = 10_000
MMD_SUBSETS = 100
MMD_SUBSET_SIZE = 1000


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(a, b, metric="euclidean", n_jobs=1)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _distances(x, x)
    return np.partition(d, k, axis=-1)[:, k]  # index 0 is the point itself (distance 0)


def subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most n rows drawn without replacement (all rows, in order, when there are not more than n)."""
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K, max_n: int = MAX_PRDC,
         seed: int = 0) -> dict[str, float]:
    """Precision, recall, density, coverage of `fake` against `real` features."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UsageError(f"prdc: feature shapes {real.shape} and {fake.shape} do not match")
    if min(len(real), len(fake)) <= k:
        raise UsageError(f"prdc: need more than k={k} points per side, have {len(real)} real, {len(fake)} fake")
    rng = np.random.default_rng(seed)
    real, fake = subsample(real, max_n, rng), subsample(fake, max_n, rng)
    r_real = _kth_radius(real, k)
    r_fake = _kth_radius(fake, k)
    d = _distances(real, fake)  # [n_real, n_fake]
    inside_real = d < r_real[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_real).mean()),
        "prdc_k": k, "prdc_n_real": len(real), "prdc_n_fake": len(fake),
    }


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0,
                  gamma: float | None = None) -> float:
    """Unbiased MMD² with the polynomial kernel (γ<x,y> + coef0)^degree; diagonals of Kxx, Kyy excluded."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    m, n = len(x), len(y)
    kxx = (g * x @ x.T + coef0) ** degree
    kyy = (g * y @ y.T + coef0) ** degree
    kxy = (g * x @ y.T + coef0) ** degree
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd(real: np.ndarray, fake: np.ndarray, subsets: int = MMD_SUBSETS, subset_size: int = MMD_SUBSET_SIZE,
        seed: int = 0) -> dict[str, float]:
    """Mean (and std) of the unbiased polynomial MMD² over random equal-size subsets of both sets."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.shape[1:] != fake.shape[1:]:
        raise UsageError(f"mmd: feature shapes {real.shape} and {fake.shape} do not match")
    m = min(len(real), len(fake), subset_size)
    if m < 2:
        raise UsageError("mmd: need at least 2 points per side")
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(real[rng.choice(len(real), m, replace=False)], fake[rng.choice(len(fake), m, replace=False)])
            for _ in range(subsets)]
    return {"mmd": float(np.mean(vals)), "mmd_std": float(np.std(vals)), "mmd_subset_size": m,
            "mmd_subsets": subsets}
