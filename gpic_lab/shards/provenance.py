"""The provenance sidecar of a collected shard: a collection directory keeps DIR/shards/NAME.tar next to
DIR/provenance/NAME.parquet (written by ``gpic_lab.collect``; URLs and the license flags the source publishes live
there, never in the shard). Stages read the flags through ``provenance_reader``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FLAG_COLUMNS = ("size", "attribution_required", "copyrighted", "nonfree", "restrictions")


def provenance_flags(shard: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """key -> {flag column: value} from the provenance file beside a collected shard ({} when there is none).

    A collection directory keeps DIR/shards/NAME.tar next to DIR/provenance/NAME.parquet; shards from elsewhere
    (the corpus, packed outputs) have no provenance and get {}."""
    import pyarrow.parquet as pq

    path = Path(shard).parent.parent / "provenance" / f"{Path(shard).stem}.parquet"
    if not path.is_file():
        return {}
    table = pq.read_table(path)
    names = [c for c in FLAG_COLUMNS if c in table.column_names]
    if not names:
        return {}
    rows = table.select(["key", *names]).to_pylist()
    return {r.pop("key"): r for r in rows}


def provenance_reader(enabled: bool = True) -> Any:
    """sample -> its provenance flags ({} for shards without a collection provenance file), one read per shard
    (used by the `license` stage)."""
    cache: dict[str, dict[str, dict[str, Any]]] = {}

    def flags(sample: Any) -> dict[str, Any]:
        shard = str(getattr(sample, "shard", "") or "")
        if not enabled or not shard:
            return {}
        if shard not in cache:
            cache[shard] = provenance_flags(shard)
        return cache[shard].get(sample.key, {})

    return flags
