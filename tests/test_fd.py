"""Fréchet distance: closed forms, an independent scipy computation, running-stats merging, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import linalg

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.evaluation import fd


def random_spd(dim: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def independent_fd(mu1, s1, mu2, s2) -> float:
    """Tr sqrt(Σ1Σ2) = Tr sqrt(Σ1^½ Σ2 Σ1^½), via symmetric eigendecompositions only."""
    w, v = linalg.eigh(s1)
    r1 = (v * np.sqrt(w)) @ v.T
    inner = linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_closed_form_gaussians() -> None:
    # 1-D: (m1-m2)^2 + (s1 - s2)^2
    res = fd.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert res["fd_mu"] == pytest.approx(9.0) and res["fd_sigma"] == pytest.approx(1.0)
    assert res["fd"] == pytest.approx(10.0)
    # Σ2 = c²Σ1 commute: FD_Σ = Tr(Σ1)(1 - c)²
    s = random_spd(6, 0)
    res = fd.frechet_distance(np.zeros(6), s, np.ones(6), 9 * s)
    assert res["fd_sigma"] == pytest.approx(np.trace(s) * 4, rel=1e-9)
    assert res["fd_mu"] == pytest.approx(6.0)
    # identical distributions
    assert abs(fd.frechet_distance(np.ones(6), s, np.ones(6), s)["fd"]) < 1e-8


def test_agrees_with_independent_scipy_computation() -> None:
    rng = np.random.default_rng(3)
    for dim in (5, 64):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = random_spd(dim, 10 + dim), random_spd(dim, 20 + dim)
        ours = fd.frechet_distance(mu1, s1, mu2, s2)["fd"]
        assert ours == pytest.approx(independent_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_features_path_uses_unbiased_covariance() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(200, 8)), rng.normal(1.0, 2.0, size=(300, 8))
    mu, sigma = fd.stats_from_features(a)
    assert np.allclose(sigma, np.cov(a, rowvar=False)) and np.allclose(sigma * 199 / 200, np.cov(a.T, bias=True))
    expect = independent_fd(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fd.fd_from_features(a, b)["fd"] == pytest.approx(expect, rel=1e-6)


def test_running_stats_merge_equals_one_pass() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0.5, 1.0, size=(1000, 16))
    one = fd.RunningStats(16).update(x)
    parts = [fd.RunningStats(16).update(c) for c in np.array_split(x, 7)]
    merged = parts[3] + parts[0] + parts[6] + parts[1] + parts[5] + parts[2] + parts[4]
    assert merged.n == 1000
    np.testing.assert_allclose(merged.mean, one.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.cov, one.cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.cov, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.mean, x.mean(0), rtol=1e-10, atol=1e-12)
    again = fd.RunningStats.from_dict(merged.to_dict())
    assert again.n == 1000 and np.array_equal(again.outer, merged.outer)
    with pytest.raises(UsageError):
        one.update(np.zeros((2, 3)))
    with pytest.raises(GpicError):
        _ = fd.RunningStats(4).update(np.zeros((1, 4))).cov


def test_imaginary_component_and_shape_errors() -> None:
    with pytest.raises(GpicError, match="imaginary"):
        fd.frechet_distance(np.zeros(2), np.diag([-4.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(UsageError, match="shape"):
        fd.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(GpicError, match="mu1 holds NaN"):
        fd.frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(GpicError, match="sigma2 holds NaN or infinite"):
        fd.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.inf))


def test_singular_covariances_stay_finite() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(5, 32))  # rank-deficient covariance (N < D)
    b = rng.normal(size=(5, 32))
    res = fd.fd_from_features(a, b)
    assert np.isfinite(res["fd"]) and res["fd"] > 0


def test_fd_curve_small_n_bias() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 8))
    mu, sigma = fd.stats_from_features(x)
    rows = fd.fd_curve(x, mu, sigma, [50, 2000], repeats=2)
    small = np.mean([r["fd"] for r in rows if r["n"] == 50])
    large = np.mean([r["fd"] for r in rows if r["n"] == 2000])
    assert small > 3 * large > 0


def test_cli_fd_stats_and_embeddings(tmp_path) -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(300, 6)), rng.normal(0.3, 1.2, size=(400, 6))
    mu, sigma = fd.stats_from_features(a)
    np.savez(tmp_path / "a.npz", dino_mu=mu, dino_sigma=sigma)
    np.savez(tmp_path / "b.npz", dino_embeddings=b.astype(np.float32))
    out = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "fd", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    expect = independent_fd(mu, sigma, b.astype(np.float32).astype(np.float64).mean(0),
                            np.cov(b.astype(np.float32).astype(np.float64), rowvar=False))
    assert got["fd"] == pytest.approx(expect, rel=1e-6)
    assert got["fd"] == pytest.approx(got["fd_mu"] + got["fd_sigma"])
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    bad = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "fd", str(tmp_path / "a.npz"), str(tmp_path / "bad.npz")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "bad.npz" in bad.stderr and "Traceback" not in bad.stderr
