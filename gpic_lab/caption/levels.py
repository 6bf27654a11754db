"""GPIC's four caption levels: the 1/45/45/9 % mix, the per-key level, token budgets and prompts."""

from __future__ import annotations

import hashlib
from importlib import resources

from gpic_lab.errors import GpicError, UsageError

LEVELS = ("tag", "short", "medium", "long")


MIX = {"tag": 0.01, "short": 0.45, "medium": 0.45, "long": 0.09}  # GPIC §2.4


MAX_NEW_TOKENS = {"tag": 48, "short": 80, "medium": 160, "long": 512}  # OUR ASSUMPTION: GPIC gives no budgets


def caption_type_for(key: str, seed: int = 0) -> str:
    """The caption level of an image, from a seeded hash of its key (1% tag / 45% short / 45% medium / 9% long).

    OUR ASSUMPTION: GPIC states the mix, not how each image's level was drawn; a per-key hash keeps it reproducible."""
    u = int.from_bytes(hashlib.sha256(f"gpic-caption-type:{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for level in LEVELS:
        edge += MIX[level]
        if u < edge:
            return level
    return LEVELS[-1]


def load_prompt(level: str) -> tuple[str, str]:
    """(prompt text, version) of a level from gpic_lab/caption/prompts/caption_<level>.txt ('#' lines are comments)."""
    if level not in LEVELS:
        raise UsageError(f"unknown caption level {level!r} (known: {', '.join(LEVELS)})")
    raw = resources.files("gpic_lab.caption").joinpath("prompts", f"caption_{level}.txt").read_text(encoding="utf-8")
    lines = [ln for ln in raw.splitlines() if not ln.startswith("#")]
    version = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("version:")), None)
    if not version:
        raise GpicError(f"prompts/caption_{level}.txt: missing 'version:' line")
    text = "\n".join(ln for ln in lines if not ln.startswith("version:")).strip()
    return text, f"{version}+{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def check_levels(levels: str) -> None:
    """UsageError unless `levels` is 'auto' (one caption type per image) or 'all' (every type)."""
    if levels not in ("auto", "all"):
        raise UsageError(f"--levels must be auto or all, got {levels!r}")
