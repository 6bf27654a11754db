"""Collision model: nested-subset removals, power-law fit, capped extrapolation and its figure."""

from __future__ import annotations

import numpy as np
import pytest

from gpic_lab.dedup import collision


def test_power_law_fit_recovers_exponent() -> None:
    ns = np.array([1000, 2000, 4000, 8000], float)
    a, beta = collision.fit_power_law(ns, 0.003 * ns**1.5)
    assert beta == pytest.approx(1.5, abs=1e-9) and a == pytest.approx(0.003, rel=1e-6)
    assert np.isnan(collision.fit_power_law(ns, np.array([0, 0, 0, 5.0]))[0])


def test_removals_only_count_pairs_inside_the_subset() -> None:
    pi, pj, ps = np.array([0, 2]), np.array([1, 3]), np.array([0.99, 0.95])
    rank = np.arange(4)
    assert collision.removals(4, pi, pj, ps, rank, np.array([0, 1, 2, 3]), 0.9) == 2
    assert collision.removals(4, pi, pj, ps, rank, np.array([0, 1, 2, 3]), 0.97) == 1
    assert collision.removals(4, pi, pj, ps, rank, np.array([0, 2, 3]), 0.9) == 1


def test_model_on_synthetic_inputs_and_figure() -> None:
    inputs = collision.inputs(synthetic_n=4000, floor=0.9, seed=1)
    table = collision.measure(inputs["n"], inputs["pi"], inputs["pj"], inputs["psim"], inputs["rank"],
                              [0.9, 0.99], fractions=(0.25, 0.5, 1.0), repeats=3)
    assert len(table) == 3 * 3 * 2
    grown = table.groupby(["threshold", "n"])["removed"].mean().unstack()
    assert (grown.diff(axis=1).iloc[:, 1:] > 0).all().all()  # more images, more removals
    assert (table[table.threshold == 0.9]["removed"].to_numpy() >= table[table.threshold == 0.99]["removed"].to_numpy()).all()
    fit = collision.collision_model(table, target=1_000_000)
    assert set(fit.fits["threshold"]) == {0.9, 0.99}
    row = fit.fits.set_index("threshold").loc[0.9]
    assert 1.0 < row["beta"] < 2.5 and row["low"] <= row["projected"] <= row["high"] <= 1_000_000
    fig = collision.figure(fit)
    assert fig.axes[0].get_xscale() == "log"


def test_every_component_keeps_exactly_one_image() -> None:
    """GPIC's collision model: the highest-resolution image per connected component survives, so a path
    best - worst - middle (rank 0 - 2 - 1) loses two images, not one."""
    pi, pj, ps = np.array([0, 1]), np.array([2, 2]), np.array([0.99, 0.99])
    assert collision.removals(3, pi, pj, ps, np.array([0, 1, 2]), np.arange(3), 0.9) == 2
    assert collision.removals(3, pi, pj, ps, np.array([0, 1, 2]), np.arange(3), 0.9, cluster_min=5) == 1
