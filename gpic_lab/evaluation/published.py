"""GPIC's published evaluation numbers, to show beside ours (notebook 07, docs/eval.md).

- Table 2 (paper §3): real-vs-real "oracle" references against the 1M test set, DINOv2 ViT-L/14 features.
- Table 3 (paper §4): the JiT-T2I baseline (PixelGen-XXL/16, 1.1B, one epoch on GPIC-Full, 256×256, Euler 50
  steps) at three CFG scales, 50K samples from the fixed test captions against the 1M test set.

What must hold before a number of ours can be read against these (``CAVEATS``): the real ViT-L/14 weights (no
registers), N = 50,000 samples against the official ``test_stats.npz`` (FD is biased upward at small N), a model
that generated the images from the eval captions. Any other row is a pipeline check.
"""

from __future__ import annotations

from typing import Any

METRICS = ("fd", "precision", "recall", "density", "coverage")
TABLE2 = [  # subset vs Test-1M (paper Table 2)
    ("Full", 1.19, 0.947, 0.950, 1.000, 0.972), ("Lite", 1.25, 0.951, 0.947, 1.010, 0.973),
    ("Nano", 1.60, 0.946, 0.946, 1.002, 0.968), ("Val", 2.37, 0.948, 0.949, 0.993, 0.966),
    ("Test-50K", 7.44, 0.949, 0.953, 0.997, 0.967)]
TABLE3 = [  # JiT-T2I after one epoch on GPIC-Full (paper Table 3)
    ("JiT-T2I, CFG 1.75", 204.01, 0.917, 0.530, 1.034, 0.806), ("JiT-T2I, CFG 4.0", 87.80, 0.933, 0.765, 1.012, 0.906),
    ("JiT-T2I, CFG 6.25", 76.25, 0.942, 0.792, 1.014, 0.908)]
CAVEATS = (
    "backbone: GPIC uses DINOv2 ViT-L/14 without registers; the default here is a tiny random placeholder",
    "sample count: GPIC evaluates 50,000 images; FD is biased upward at small N, so only equal N compares",
    "reference: GPIC's statistics cover the 1M test images; here the reference is the sample's test split",
    "generated images: GPIC's come from a text-to-image model on the 50K eval captions; the stand-ins here are "
    "random crops of real train/val images (disjoint from the reference), not a model's output",
)


def _frame(rows: list[tuple[Any, ...]], source: str) -> Any:
    import pandas as pd

    return pd.DataFrame([dict(zip(("set", *METRICS), r, strict=True)) for r in rows]).assign(source=source)


def table2() -> Any:
    """GPIC Table 2 as a DataFrame (set, fd, precision, recall, density, coverage, source)."""
    return _frame(TABLE2, "GPIC Table 2 (ViT-L/14, vs Test-1M)")


def table3() -> Any:
    """GPIC Table 3 as a DataFrame (set, fd, precision, recall, density, coverage, source)."""
    return _frame(TABLE3, "GPIC Table 3 (ViT-L/14, 50K vs Test-1M)")


def beside(ours: Any, published: Any, label: str) -> Any:
    """Our rows (columns ``set`` or ``subset`` plus metric columns; n_samples kept when present) stacked above the
    published ones, with a ``source`` column; metrics we could not compute stay empty (NaN)."""
    import pandas as pd

    mine = ours.rename(columns={"subset": "set"})
    cols = ["set", *METRICS, *(["n_samples"] if "n_samples" in mine.columns else [])]
    mine = mine.reindex(columns=cols).assign(source=label)
    mine[list(METRICS)] = mine[list(METRICS)].astype(float)  # None (not computable) -> NaN
    return pd.concat([mine, published], ignore_index=True)[["source", "set", *METRICS, *cols[len(METRICS) + 1:]]]
