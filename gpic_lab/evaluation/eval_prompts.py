"""The fixed GPIC eval captions: (key, caption, caption_type) for the keys of a reference npz, in its key order.

GPIC generates its 50K evaluation samples from the captions of the 50,000 test keys listed in the official
`test_stats.npz` (`key`). We read only the JSON members of the test shards (no image bytes) and write JSONL.
OUR ASSUMPTION: GPIC publishes the key list, not a caption file; one line per key, in the npz's key order, with the
record's own caption and caption_type, is our reconstruction (as third-party tools rebuild it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, UsageError


def reference_keys(ref_npz: str | os.PathLike[str]) -> list[str]:
    """The `key` array of a stats npz (GPIC layout), as strings."""
    from gpic_lab.evaluation.refstats import read_stats

    keys = read_stats(ref_npz)["keys"]
    if keys is None:
        raise UsageError(f"{ref_npz}: has no key array (need the official test_stats.npz or a refstats file)")
    return [str(k) for k in keys]


def collect_prompts(shards: list[str], keys: list[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows in `keys` order and counts (found, missing, duplicates_in_shards, records_read)."""
    from gpic_lab.shards.reader import iter_samples, list_shards

    wanted = set(keys)
    found: dict[str, dict[str, Any]] = {}
    read = dup = 0
    for sample in iter_samples(list_shards(shards), images=False):
        read += 1
        if sample.key not in wanted:
            continue
        if sample.key in found:
            dup += 1
            continue
        meta = sample.meta
        found[sample.key] = {"key": sample.key, "caption": meta.get("caption", ""),
                             "caption_type": meta.get("caption_type", "")}
    rows = [found[k] for k in keys if k in found]
    return rows, {"keys": len(keys), "found": len(rows), "missing": len(keys) - len(rows),
                  "duplicates_in_shards": dup, "records_read": read}


def write_eval_prompts(shards: list[str], ref_npz: str | os.PathLike[str], out: str | os.PathLike[str],
                       allow_missing: bool = False) -> dict[str, Any]:
    """Write the eval captions JSONL atomically; fails (exit 1) when keys are missing unless allow_missing."""
    from gpic_lab.fsio import write_bytes_atomic

    keys = reference_keys(ref_npz)
    rows, counts = collect_prompts(shards, keys)
    if counts["missing"] and not allow_missing:
        example = next(k for k in keys if k not in {r["key"] for r in rows})
        raise GpicError(f"eval-prompts: {counts['missing']} of {counts['keys']} keys of {ref_npz} not found in the "
                        f"shards (e.g. {example}); pass --allow-missing to write the {counts['found']} found")
    empty = sum(1 for r in rows if not str(r["caption"]).strip())
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    write_bytes_atomic(out, text.encode("utf-8"))
    return {**counts, "empty_captions": empty, "out": str(Path(out))}
