"""Review decisions: what auditors decided (FiftyOne tags, review-table verdicts) as a standard decisions table.

A ``Mark`` is one reviewer's verdict on one key, named by a *tag* (``reject``, ``recaption``, ``keep``, or any tag
configured in ``TagActions``). ``review_frame`` turns marks into the decisions layout of ``gpic_lab.engine.records``
(stage ``review``, one row per reviewed key) and ``write_review`` writes it like every stage does:
``decisions.parquet``, ``counts.csv``, ``reasons.csv``, ``summary.json``. ``pack`` applies it like any other stage.

Rows:
  keep / reason   ``drop`` and ``recaption`` tags: keep=False, reason ``review:<tag>``; ``keep`` tags: keep=True.
  review_action   drop | recaption | keep. ``caption --redo`` recaptions the rows with review_action == recaption
                  (reason ``review:recaption`` with the default tags); until it has, ``pack`` leaves them out.
  review_tag      the tag that decided; review_tags: every review tag the key had (``;``-joined).
  reviewed_by / reviewed_at / review_source / review_note: who, when (ISO 8601 UTC), where (``fiftyone:<dataset>``
                  or ``review-table:<file>``) and the reviewer's note.
  caption_type    the level to recaption; reasons / detail: the reason and the note again, under the names the
                  caption second pass reads for its correction hint.

OUR ASSUMPTIONS (GPIC has no human review step): when one key has several review tags the most severe action
wins (drop > recaption > keep; then the latest mark); reviewers not recorded by the tool are "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

STAGE = "review"
ACTIONS = ("drop", "recaption", "keep")
SEVERITY = {"drop": 2, "recaption": 1, "keep": 0}
DEFAULT_TAGS: dict[str, str] = {"reject": "drop", "recaption": "recaption", "keep": "keep"}
EXTRA_COLUMNS = ("review_action", "review_tag", "review_tags", "reviewed_by", "reviewed_at", "review_source",
                 "review_note", "caption_type", "reasons", "detail")


@dataclass(frozen=True)
class Mark:
    """One reviewer's verdict on one key.

    Attributes:
        key: the sample key.
        tag: the review tag (a key of the tag actions).
        source: where it was made: ``fiftyone:<dataset>`` or ``review-table:<file>``.
        reviewed_by / reviewed_at: who and when (ISO 8601, UTC).
        note: free text from the reviewer.
        caption_type: the caption level the verdict is about ("" when unknown).
        meta: record fields for the decisions layout (shard, license, license_url, attribution).
    """

    key: str
    tag: str
    source: str
    reviewed_by: str = "unknown"
    reviewed_at: str = ""
    note: str = ""
    caption_type: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


def parse_tags(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Tag actions from ``"reject=drop,recaption=recaption,keep=keep"`` (or a mapping); None: ``DEFAULT_TAGS``.

    A bare tag that is itself an action name (``recaption``) maps to that action.
    """
    if spec is None or spec == "":
        return dict(DEFAULT_TAGS)
    items = spec.items() if isinstance(spec, Mapping) else (
        (part.partition("=")[0], part.partition("=")[2] or part.partition("=")[0])
        for part in str(spec).split(",") if part.strip())
    out: dict[str, str] = {}
    for tag, action in items:
        tag, action = str(tag).strip(), str(action).strip()
        if action not in ACTIONS:
            raise UsageError(f"review tag {tag!r}: action {action!r} is not one of {', '.join(ACTIONS)}")
        if not tag or any(c.isspace() or c in ",=:" for c in tag):
            raise UsageError(f"review tag {tag!r}: use a non-empty tag without spaces, ',', '=' or ':'")
        out[tag] = action
    return out


def _winner(marks: list[Mark], tags: Mapping[str, str]) -> Mark:
    return max(marks, key=lambda m: (SEVERITY[tags[m.tag]], m.reviewed_at))


def review_frame(marks: Iterable[Mark], tags: Mapping[str, str] | None = None) -> Any:
    """The decisions table of the marks: one row per key (columns of ``engine.records`` plus ``EXTRA_COLUMNS``).

    Marks whose tag is not configured are ignored; rows are sorted by key.
    """
    import pandas as pd

    from gpic_lab.core.licenses import license_family, source_of
    from gpic_lab.engine.records import BASE_COLUMNS

    tags = parse_tags(tags)
    by_key: dict[str, list[Mark]] = {}
    for m in marks:
        if m.tag in tags:
            by_key.setdefault(m.key, []).append(m)
    rows = []
    for key in sorted(by_key):
        win = _winner(by_key[key], tags)
        action = tags[win.tag]
        reason = None if action == "keep" else f"{STAGE}:{win.tag}"
        meta = next((m.meta for m in by_key[key] if m.meta), {})
        rows.append({"key": key, "shard": str(meta.get("shard") or ""), "stage": STAGE, "keep": action == "keep",
                     "reason": reason, "license": str(meta.get("license") or ""),
                     "license_family": license_family(meta.get("license") or "", meta.get("license_url")),
                     "source": source_of(meta), "review_action": action, "review_tag": win.tag,
                     "review_tags": ";".join(sorted({m.tag for m in by_key[key]})),
                     "reviewed_by": win.reviewed_by or "unknown", "reviewed_at": win.reviewed_at,
                     "review_source": win.source, "review_note": win.note,
                     "caption_type": win.caption_type or next((m.caption_type for m in by_key[key] if m.caption_type), ""),
                     "reasons": reason or "", "detail": win.note})
    frame = pd.DataFrame(rows, columns=[*BASE_COLUMNS, *EXTRA_COLUMNS])
    return frame.astype({"keep": bool, "reason": "object"})


def write_review(frame: Any, out_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Write the standard stage layout (decisions.parquet, counts.csv, reasons.csv, summary.json); returns the summary."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from gpic_lab.engine.records import reason_counts
    from gpic_lab.engine.stages import reasons_table
    from gpic_lab.fsio import atomic_path, write_json_atomic, write_parquet_atomic

    out = Path(out_dir)
    schema = pa.schema([(c, pa.bool_() if c == "keep" else pa.string()) for c in frame.columns])
    write_parquet_atomic(out / "decisions.parquet", pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    with atomic_path(out / "counts.csv") as tmp:
        reason_counts(frame).to_csv(tmp, index=False)
    reasons = reasons_table(frame)
    with atomic_path(out / "reasons.csv") as tmp:
        reasons.to_csv(tmp, index=False)
    actions = frame["review_action"].value_counts()
    summary = {"stage": STAGE, "params": dict(params), "samples": len(frame), "kept": int(frame["keep"].sum()),
               "dropped": int((~frame["keep"]).sum()), "recaption": int(actions.get("recaption", 0)),
               "reasons": dict(zip(reasons["reason"], reasons["count"].astype(int).tolist(), strict=True)),
               "sources": sorted(set(frame["review_source"])),
               "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json_atomic(out / "summary.json", summary)
    return summary


def export_marks(marks: Iterable[Mark], out_dir: str | Path, tags: str | Mapping[str, str] | None = None,
                 params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``review_frame`` + ``write_review``: the review decisions of ``marks`` under ``out_dir``; returns the summary.

    An export with no configured tag at all is a UsageError (nothing reviewed yet, or other tag names).
    """
    actions = parse_tags(tags)
    marks = list(marks)
    frame = review_frame(marks, actions)
    if not len(frame):
        raise UsageError(f"no sample carries a review tag ({', '.join(sorted(actions))}); tag samples in the App "
                         "or give verdicts, then export again")
    return write_review(frame, out_dir, {"tags": actions, **dict(params or {})})
