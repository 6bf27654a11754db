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
TEXT_FIELDS = tuple(name for name, typ in FIELDS.items() if typ is str)
# Limits on what a record may hold (OUR ASSUMPTION: GPIC states none; a long caption is a few KB). A record beyond
# them is a counted problem in every reader, never a crash or an allocation: see docs/engine.md "Hostile input".
MAX_JSON_BYTES = 1 << 20  # a JSON member larger than 1 MiB is bad-json (it is not even read)
MAX_STRING_CHARS = 1 << 16  # any string (field value or key) longer than 65,536 characters is a schema problem
MAX_DEPTH = 32  # objects/arrays nested deeper than this are bad-json (GPIC records are 2 levels deep)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1  # integers outside int64 are bad-json (tables store int64)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def record_problem(meta: Any, raw: bytes = b"") -> tuple[str, str] | None:
    """(code, message) when a parsed record cannot be handed to any consumer, else None.

    ``bad-json``: nesting deeper than MAX_DEPTH, an integer outside int64, a lone UTF-16 surrogate (``"\\ud800"``
    parses in Python but cannot be written as UTF-8). ``schema``: a string longer than MAX_STRING_CHARS, or a GPIC
    text field holding an object or array. `raw` (the JSON bytes) lets the surrogate check run only when the text
    holds a surrogate escape at all.
    """
    surrogates = bool(_SURROGATE_ESCAPE.search(raw)) if raw else True
    schema: tuple[str, str] | None = None
    stack: list[tuple[Any, int]] = [(meta, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            stack += [(k, depth) for k in value]
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
        elif isinstance(value, str):
            if surrogates and _has_surrogate(value):
                return "bad-json", f"lone UTF-16 surrogate in {value[:40]!r}"
            if len(value) > MAX_STRING_CHARS and schema is None:
                schema = "schema", f"a string of {len(value)} characters (limit {MAX_STRING_CHARS})"
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            return "bad-json", f"integer {str(value)[:24]}... outside the 64-bit range"
        if depth > MAX_DEPTH:
            return "bad-json", f"values nested deeper than {MAX_DEPTH} levels"
    if schema is None and isinstance(meta, dict):
        bad = next((f for f in TEXT_FIELDS if f in meta and type(meta[f]) is not str), None)
        if bad:
            schema = "schema", f"field {bad!r} is {type(meta[bad]).__name__}, expected str"
    return schema


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
        elif typ is str and len(meta[name]) > MAX_STRING_CHARS:
            problems.append(f"field {name!r} has {len(meta[name])} characters (limit {MAX_STRING_CHARS})")
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
