"""Fréchet distance with dgm-eval's numerics, and mergeable running feature statistics.

`RunningStats` keeps n, the feature sum and the outer-product sum in float64, so 1M x 1024 features never need
to be held in memory and partial stats from shards/workers combine with `merge` (or `+`). `frechet_distance`
follows `dgm_eval.metrics.fd.compute_FD_with_stats`: `scipy.linalg.sqrtm(Σ1·Σ2)`, retry with eps·I added to both
covariances when the root is not finite, accept an imaginary part only when the diagonal's is within 1e-3.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError


@dataclass
class RunningStats:
    """n, Σx and Σxxᵀ in float64; mean/cov (unbiased, N-1) on demand."""

    dim: int
    n: int = 0
    total: np.ndarray = field(default=None)  # type: ignore[assignment]
    outer: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = np.zeros(self.dim, dtype=np.float64)
        if self.outer is None:
            self.outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, feats: np.ndarray) -> RunningStats:
        """Add a batch [B, dim] (cast to float64)."""
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise UsageError(f"fd: features of shape {x.shape} do not match dim {self.dim}")
        self.n += x.shape[0]
        self.total += x.sum(axis=0)
        self.outer += x.T @ x
        return self

    def merge(self, other: RunningStats) -> RunningStats:
        """A new RunningStats holding both (order does not matter up to float rounding)."""
        if other.dim != self.dim:
            raise UsageError(f"fd: cannot merge stats of dim {self.dim} and {other.dim}")
        return RunningStats(self.dim, self.n + other.n, self.total + other.total, self.outer + other.outer)

    __add__ = merge

    @property
    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise GpicError("fd: no features accumulated")
        return self.total / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (like np.cov(x, rowvar=False))."""
        if self.n < 2:
            raise GpicError(f"fd: covariance needs at least 2 samples, have {self.n}")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum": self.total, "outer": self.outer}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunningStats:
        total = np.asarray(d["sum"], dtype=np.float64)
        return cls(int(total.shape[0]), int(d["n"]), total, np.asarray(d["outer"], dtype=np.float64))


def stats_from_features(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) exactly as dgm-eval: np.mean and np.cov(rowvar=False) in float64."""
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise UsageError(f"fd: need a [N>=2, D] feature array, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm(a, disp=False)[0] across SciPy versions (1.17 deprecates disp and returns the array)."""
    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            try:
                out = linalg.sqrtm(a, disp=False)
            except TypeError:  # a SciPy without the disp keyword
                out = linalg.sqrtm(a)
        except (linalg.LinAlgError, ValueError) as exc:
            raise GpicError(f"fd: scipy.linalg.sqrtm failed on Σ1Σ2 ({exc})") from exc
    return out[0] if isinstance(out, tuple) else out


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> dict[str, float]:
    """FD = ||μ1-μ2||² + Tr(Σ1 + Σ2 - 2(Σ1Σ2)^½); returns fd, fd_mu, fd_sigma (dgm-eval numerics)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise UsageError(f"fd: mean vectors differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise UsageError(f"fd: covariances {sigma1.shape}/{sigma2.shape} do not match dim {mu1.shape[0]}")
    for name, arr in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(arr).all():
            raise GpicError(f"fd: {name} holds NaN or infinite values (corrupt statistics?)")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    fallback = False
    if not np.isfinite(covmean).all():
        fallback = True
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if not np.isfinite(covmean).all():
        raise GpicError(f"fd: sqrtm(Σ1Σ2) is not finite even with eps={eps} added to the diagonals")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = float(np.max(np.abs(covmean.imag)))
            raise GpicError(f"fd: imaginary component {m:.3g} in sqrtm(Σ1Σ2) exceeds tolerance 1e-3")
        covmean = covmean.real
    fd_mu = float(diff.dot(diff))
    fd_sigma = float(np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    return {"fd": fd_mu + fd_sigma, "fd_mu": fd_mu, "fd_sigma": fd_sigma, "eps_fallback": fallback}


def fd_from_features(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """FD between two feature arrays [N, D]."""
    return frechet_distance(*stats_from_features(a), *stats_from_features(b))


def fd_curve(feats: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, sizes: list[int],
             repeats: int = 3, seed: int = 0) -> list[dict[str, float]]:
    """FD of random subsets of `feats` (sizes × repeats, seeded) against reference stats: the small-N bias."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        if n < 2 or n > len(feats):
            raise UsageError(f"fd: subset size {n} outside [2, {len(feats)}]")
        for r in range(repeats):
            idx = rng.choice(len(feats), n, replace=False)
            res = frechet_distance(*stats_from_features(feats[idx]), ref_mu, ref_sigma)
            rows.append({"n": n, "repeat": r, "fd": res["fd"], "fd_mu": res["fd_mu"], "fd_sigma": res["fd_sigma"]})
    return rows
