"""The stage contract's record: a Decision per sample, and the decisions table every filter stage writes.

decisions.parquet columns (contract; extend, never rename):
  key (str), shard (str), stage (str), keep (bool), reason (str, null when kept),
  license (str), license_family (str), source (str: flickr | wikimedia | other),
  score_<name> (float64) for every score a stage reports, plus stage-specific extras (e.g. kept_key, similarity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BASE_COLUMNS = ("key", "shard", "stage", "keep", "reason", "license", "license_family", "source")


@dataclass(frozen=True, slots=True)
class Decision:
    """What a stage decided for one sample. A dropped sample always has a reason."""

    key: str
    keep: bool
    reason: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.keep and not self.reason:
            raise ValueError(f"decision for {self.key}: a dropped sample needs a reason")
        if self.keep and self.reason:
            raise ValueError(f"decision for {self.key}: a kept sample has no reason (got {self.reason!r})")


def decisions_frame(decisions: Iterable[Decision], stage: str, meta_by_key: Mapping[str, Mapping[str, Any]],
                    shard_by_key: Mapping[str, str]) -> Any:
    """A pandas DataFrame in the decisions.parquet layout; license family and source come from the records."""
    import pandas as pd

    from gpic_lab.core.licenses import license_family, source_of

    rows = []
    for d in decisions:
        meta = meta_by_key.get(d.key, {})
        row = {"key": d.key, "shard": shard_by_key.get(d.key, ""), "stage": stage, "keep": bool(d.keep),
               "reason": d.reason, "license": meta.get("license", ""),
               "license_family": license_family(meta.get("license", ""), meta.get("license_url")),
               "source": source_of(meta)}
        row.update({f"score_{k}": float(v) for k, v in d.scores.items()})
        row.update(d.extra)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(BASE_COLUMNS))
    return frame.astype({"keep": bool}) if len(frame) else frame


def reason_counts(frame: Any) -> Any:
    """Counts per reason × license family × source (kept samples count under reason 'kept')."""
    reasons = frame["reason"].fillna("kept")
    return (frame.assign(reason=reasons).groupby(["reason", "license_family", "source"], dropna=False)
            .size().rename("count").reset_index().sort_values(["reason", "license_family", "source"]))
