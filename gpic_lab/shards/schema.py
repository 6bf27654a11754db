"""The GPIC JSON record schema (HF dataset card field list) and its checks."""

from __future__ import annotations

import re
from typing import Any

from gpic_lab.shards.tiers import TIERS, is_nested

FIELDS: dict[str, type] = {
    "retrieved_at": str, "license": str, "license_url": str, "attribution": str, "key": str,
    "img_width": int, "img_height": int, "split": list, "caption_type": str, "caption": str,
}
CAPTION_TYPES = ("tag", "short", "medium", "long")
KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def check_meta(meta: dict[str, Any], require_caption: bool = True) -> list[str]:
    """Schema problems of one record as messages (empty when valid).

    With require_caption=False (collected, not yet captioned shards) caption_type may be "" and caption "".
    """
    problems = []
    for name, typ in FIELDS.items():
        if name not in meta:
            problems.append(f"missing field {name!r}")
        elif type(meta[name]) is not typ:
            problems.append(f"field {name!r} is {type(meta[name]).__name__}, expected {typ.__name__}")
    if problems:
        return problems
    if not KEY_RE.match(meta["key"]):
        problems.append(f"key {meta['key']!r} is not 64 lowercase hex characters")
    for dim in ("img_width", "img_height"):
        if meta[dim] <= 0:
            problems.append(f"{dim} must be positive, got {meta[dim]}")
    bad_split = [s for s in meta["split"] if s not in TIERS]
    if bad_split or len(set(meta["split"])) != len(meta["split"]):
        problems.append(f"split must be a list of distinct values from {list(TIERS)}, got {meta['split']!r}")
    elif not is_nested(meta["split"]):  # tiers are nested shard prefixes (gpic_lab.shards.tiers)
        problems.append(f"split {meta['split']!r} is not a nested tier list: [], ['full'], ['lite', 'full'] or "
                        "['nano', 'lite', 'full']")
    captioned = meta["caption_type"] != "" or meta["caption"] != ""
    if require_caption or captioned:
        if meta["caption_type"] not in CAPTION_TYPES:
            problems.append(f"caption_type {meta['caption_type']!r} not in {list(CAPTION_TYPES)}")
        if not meta["caption"].strip():
            problems.append("empty caption")
    return problems


def new_record(key: str, width: int, height: int, license: str, license_url: str, attribution: str,
               retrieved_at: str, caption_type: str = "", caption: str = "", split: list[str] | None = None) -> dict[str, Any]:
    """A record with every GPIC field, in the card's field order."""
    return {
        "retrieved_at": retrieved_at, "license": license, "license_url": license_url,
        "attribution": attribution, "key": key, "img_width": width, "img_height": height,
        "split": list(split or []), "caption_type": caption_type, "caption": caption,
    }
