"""What feeding a GPIC training run costs: loader cores per GPU, storage/egress per tier, time to stream an
epoch at a given bandwidth. Inputs are measured loader rates; GPIC figures come from the paper (§1, §4; docs/gpic.md)."""

from __future__ import annotations

from typing import Any

from gpic_lab.shards.tiers import tier_shard_counts

FULL_IMAGES = 100_000_000
FULL_TB = 12.9  # the HF release: 8,000 train shards, 12.9 TB (train/val/test together; train dominates)
TIERS = tier_shard_counts(8000)  # GPIC's 8,000 train shards: first 80 / 800 / 8,000 (the one tier rule)
GPIC_IMAGES_PER_S = FULL_IMAGES / (40 * 3600)  # one epoch in ~40 h on one 8×H100 node


def cost_table(per_core_images_s: float, gpus: int = 8, bandwidth_gbps: float = 10.0,
               speedups: tuple[float, ...] = (1.0, 5.0)) -> Any:
    """One row per tier: images, TB to store/egress, hours to stream one epoch at `bandwidth_gbps`, and loader
    CPU cores needed to feed `gpus` GPUs at GPIC's training speed × each speedup."""
    import pandas as pd

    if per_core_images_s <= 0:
        raise ValueError("per_core_images_s must be positive")
    rows = []
    for tier, shards in TIERS.items():
        frac = shards / TIERS["full"]
        tb = FULL_TB * frac
        row: dict[str, Any] = {"tier": tier, "shards": shards, "images": int(FULL_IMAGES * frac),
                               "storage_or_egress_tb": round(tb, 2),
                               "stream_epoch_h": round(tb * 8e12 / (bandwidth_gbps * 1e9) / 3600, 2)}
        for s in speedups:
            rate = GPIC_IMAGES_PER_S * gpus / 8 * s
            row[f"cores_{s:g}x"] = round(rate / per_core_images_s, 1)
            row[f"cores_per_gpu_{s:g}x"] = round(rate / per_core_images_s / gpus, 2)
            row[f"epoch_h_{s:g}x"] = round(FULL_IMAGES * frac / rate / 3600, 2)
            row[f"gbps_needed_{s:g}x"] = round(rate * tb * 1e12 / (FULL_IMAGES * frac) * 8 / 1e9, 2)
        rows.append(row)
    return pd.DataFrame(rows)
