"""Layout presets for `gpic-lab pack --preset NAME` and the layout a pack would write (`--dry-run`).

``gpic``: GPIC's released layout (paper §2.5, dataset card): 8,000 train shards (≈ 12,500 images each for 100M),
200,000 validation images in 32 shards, 1,000,000 test images in 128 shards; Nano / Lite / Full = the first
80 / 800 / 8,000 train shards (``gpic_lab.shards.tiers``). Each value can be overridden flag by flag.
"""

from __future__ import annotations

from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.shards.tiers import TIERS, tier_shard_counts

PRESETS: dict[str, dict[str, float]] = {
    "gpic": {"shards": 8000, "val": 200_000, "val_shards": 32, "test": 1_000_000, "test_shards": 128},
}
DEFAULTS: dict[str, float] = {"val": 0.0, "val_shards": 1, "test": 0.0, "test_shards": 1}
GPIC_TRAIN_IMAGES = 100_000_000  # paper §2.5: the train split; the preset leaves train as "the rest of the pool"


def resolve(preset: str | None, **flags: float | None) -> dict[str, float]:
    """Layout values: explicit flags first, then the preset, then the plain defaults (``shards`` has none)."""
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = {**DEFAULTS, **(PRESETS[preset] if preset else {})}
    out = {k: v for k, v in base.items()}
    out.update({k: v for k, v in flags.items() if v is not None})
    if "shards" not in out:
        raise UsageError("--shards N is required (or --preset gpic for GPIC's 8,000)")
    for name in ("shards", "val_shards", "test_shards"):
        if int(out[name]) != out[name] or out[name] < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {out[name]}")
        out[name] = int(out[name])
    return out


def _files(split: str, n: int) -> str:
    from gpic_lab.pack.packer import SPLIT_PREFIX

    if n == 1:
        return f"{split}/{SPLIT_PREFIX[split]}_00000.tar"
    return f"{split}/{SPLIT_PREFIX[split]}_{{00000..{n - 1:05d}}}.tar"


def layout(shards: int, val: float, test: float, val_shards: int, test_shards: int,
           train_images: int | None = None) -> dict[str, Any]:
    """The files, sample counts and tiers a pack with these values writes (no inputs read).

    Args:
        train_images: known train size (e.g. from a plan); None: "the rest of the kept pool".
    """
    tiers = tier_shard_counts(shards)
    per_shard = round(train_images / shards) if train_images else None
    return {
        "splits": {
            "train": {"shards": shards, "files": _files("train", shards), "samples": train_images,
                      "samples_per_shard": per_shard},
            "val": {"shards": val_shards, "files": _files("val", val_shards), "samples": val},
            "test": {"shards": test_shards, "files": _files("test", test_shards), "samples": test}},
        "tiers": {t: {"shards": tiers[t], "files": _files("train", tiers[t]),
                      "samples": per_shard * tiers[t] if per_shard else None} for t in TIERS},
    }


def plan_layout(preset: str = "gpic", **flags: float | None) -> dict[str, Any]:
    """The layout of a preset with overrides (the plan API behind ``pack --preset NAME --dry-run``)."""
    v = resolve(preset, **flags)
    train = GPIC_TRAIN_IMAGES if preset == "gpic" and v["shards"] == PRESETS["gpic"]["shards"] else None
    return layout(int(v["shards"]), v["val"], v["test"], int(v["val_shards"]), int(v["test_shards"]), train)


def layout_text(lay: dict[str, Any]) -> str:
    """A readable table of a layout (train samples shown as 'rest of the pool' when unknown)."""
    def count(v: Any) -> str:
        if v is None:
            return "rest of the kept pool"
        return f"{v:.0%} of the kept pool" if 0 < v < 1 else f"{int(v):,}"

    lines = [f"{'split/tier':<10} {'shards':>7}  {'samples':>22}  files"]
    for split, row in lay["splits"].items():
        extra = f" (≈ {row['samples_per_shard']:,} per shard)" if row.get("samples_per_shard") else ""
        lines.append(f"{split:<10} {row['shards']:>7,}  {count(row['samples']):>22}  {row['files']}{extra}")
    for tier, row in lay["tiers"].items():
        samples = count(row["samples"]) if row["samples"] is not None else "its shards' samples"
        lines.append(f"{tier:<10} {row['shards']:>7,}  {samples:>22}  {row['files']}")
    return "\n".join(lines)
