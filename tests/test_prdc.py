"""PRDC and MMD against hand-computed small cases and an independent sklearn kernel computation."""
from __future__ import annotations

import numpy as np
import pytest

from gpic_lab.errors import UsageError
from gpic_lab.evaluation import prdc


def test_prdc_hand_computed_1d() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: 1, 1, 1, 1
    fake = np.array([[0.5], [10.0]])  # k=1 radii: 9.5, 9.5
    res = prdc.prdc(real, fake, k=1)
    # fake 0.5 lies in the balls of real 0 and 1; fake 10 in none
    assert res["precision"] == pytest.approx(0.5)
    assert res["density"] == pytest.approx((2 + 0) / 2 / 1)
    # every real lies within 9.5 of fake 0.5
    assert res["recall"] == pytest.approx(1.0)
    # nearest fake of reals 0,1 is at 0.5 (< 1); of reals 2,3 at 1.5, 2.5
    assert res["coverage"] == pytest.approx(0.5)


def test_prdc_identical_sets_and_far_sets() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    same = prdc.prdc(x, x.copy(), k=5)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    far = prdc.prdc(x, x + 100.0, k=5)
    assert far["precision"] == 0.0 and far["recall"] == 0.0 and far["density"] == 0.0 and far["coverage"] == 0.0


def test_prdc_subsampling_is_seeded() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 3)), rng.normal(0.2, 1, size=(600, 3))
    r1 = prdc.prdc(a, b, max_n=200, seed=3)
    assert r1 == prdc.prdc(a, b, max_n=200, seed=3)
    assert r1["prdc_n_real"] == 200 and r1["prdc_n_fake"] == 200
    with pytest.raises(UsageError):
        prdc.prdc(a[:3], b, k=5)


def test_mmd_hand_computed() -> None:
    x = np.array([[1.0], [2.0]])
    y = np.array([[0.0], [1.0]])
    # Kxx off-diag (2+1)^3 = 27; Kyy off-diag (0+1)^3 = 1; Kxy = 1, 8, 1, 27 -> mean 9.25
    assert prdc.mmd2_unbiased(x, y) == pytest.approx(27 + 1 - 2 * 9.25)


def test_mmd_matches_sklearn_kernel_and_subsets() -> None:
    from sklearn.metrics.pairwise import polynomial_kernel

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 7)), rng.normal(0.5, 1, size=(40, 7))
    kxx, kyy, kxy = (polynomial_kernel(a, b, degree=3, coef0=1) for a, b in ((x, x), (y, y), (x, y)))
    n = 40
    expect = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
    assert prdc.mmd2_unbiased(x, y) == pytest.approx(expect, rel=1e-10)
    # subsets of the full size are permutations: every subset gives the full-set value
    res = prdc.mmd(x, y, subsets=5, subset_size=1000, seed=0)
    assert res["mmd"] == pytest.approx(expect, rel=1e-10) and res["mmd_subset_size"] == 40
    z = rng.normal(size=(300, 7))
    near = prdc.mmd(z[:150], z[150:], subsets=20, subset_size=100)["mmd"]
    assert abs(near) < prdc.mmd(z[:150], z[150:] + 1.0, subsets=20, subset_size=100)["mmd"]
