"""Caption QC: rule checks per caption level, from GPIC's published caption prompts (paper Figs. F.1-F.4).

Each failed rule is a reason in the stage contract (``qc_stage`` returns one Decision per sample). A caption can
break several rules; the Decision's reason is the first by ``REASON_ORDER`` and ``extra["reasons"]`` lists all.

Reasons: empty, bad-type, not-visible (NOT VISIBLE. on a usable or unchecked image, or malformed), not-visible-image
(NOT VISIBLE. on an image that is indeed unusable), truncated
(no terminal punctuation, or generation hit max tokens), repetition (repeated n-grams / loops / repeated tags),
duplicate-caption (same caption as another image), meta-opening ("The image shows ..."), forbidden-word
("image", "photo", "picture"; "foreground" for long), tag-format (not lowercase comma-separated noun phrases:
articles, connectives, punctuation), length (sentence/word/tag counts outside the level's bounds).

OUR ASSUMPTIONS (GPIC's prompts give the rules, not the check): the widened bounds (``DEFAULT_PARAMS``), the duplicate
policy (every image sharing a caption fails), and no ``NOT VISIBLE.`` passing QC (pack refuses it too): a visible or
unchecked image is recaptioned by ``caption --redo``, an unusable one is dropped (GPIC does not say what became of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpic_lab.caption.checks import (
    DEFAULT_PARAMS,
    LEVELS,
    NOT_VISIBLE,
    REASON_ORDER,
    check_caption,
    merged_params,
)
from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.engine.records import Decision


def image_usable(image: Any, params: Mapping[str, Any] | None = None) -> bool:
    """Whether a PIL image is visible enough to caption (not blank, not nearly black or white)."""
    import numpy as np

    from gpic_lab.core.images import to_rgb

    p = params if params is not None and "usable_std" in params else merged_params(params)
    thumb = to_rgb(image).convert("L")  # what the captioner sees (16-bit grey scaled, transparency on white)
    thumb.thumbnail((128, 128))
    arr = np.asarray(thumb, dtype=np.float64)
    lo, hi = p["usable_mean"]
    return bool(arr.std() > p["usable_std"] and lo < arr.mean() < hi)


def _normalise(caption: str) -> str:
    return " ".join(caption.lower().split()).rstrip(".")


def duplicate_keys(captions: Mapping[str, str], mode: str = "all") -> dict[str, str]:
    """Keys whose caption (case/space-normalised) is shared with another key -> the first key holding it.

    ``NOT VISIBLE.`` is never a duplicate (it is the prescribed answer for every unusable image).
    """
    groups: dict[str, list[str]] = {}
    for key, caption in captions.items():
        if caption.strip() and caption.strip() != NOT_VISIBLE:
            groups.setdefault(_normalise(caption), []).append(key)
    out: dict[str, str] = {}
    for keys in groups.values():
        if len(keys) > 1:
            for k in keys if mode == "all" else keys[1:]:
                out[k] = keys[0]
    return out


def qc_rows(rows: Iterable[Mapping[str, Any]], params: Mapping[str, Any] | None = None,
            dups: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """QC a table of captions: rows with key, caption_type, caption, optional truncated and usable.

    Args:
        dups: precomputed duplicate map (``duplicate_keys`` over a larger set); default: within ``rows``.
    Returns one dict per row: key, caption_type, caption, keep, reason, reasons, detail, words, sentences, tags.
    """
    p = merged_params(params)
    rows = list(rows)
    if dups is None:
        dups = duplicate_keys({r["key"]: r["caption"] for r in rows}, p["duplicates"])
    out = []
    for r in rows:
        check = check_caption(r["caption"], r["caption_type"], p, bool(r.get("truncated", False)), r.get("usable"))
        reasons = list(check.reasons)
        details = list(check.details)
        if r["key"] in dups:
            reasons.append("duplicate-caption")
            details.append(f"same caption as {dups[r['key']][:12]}" if dups[r["key"]] != r["key"]
                           else "caption repeated by other images")
        reasons = [x for x in REASON_ORDER if x in reasons]
        out.append({"key": r["key"], "caption_type": r["caption_type"], "caption": r["caption"],
                    "keep": not reasons, "reason": reasons[0] if reasons else None, "reasons": ";".join(reasons),
                    "detail": "; ".join(details), "words": check.words, "sentences": check.sentences,
                    "tags": check.tags, "max_ngram_repeats": check.max_ngram_repeats,
                    "not_visible": r["caption"].strip() == NOT_VISIBLE})
    return out


def _caption_overrides(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Captions from captions parquet files or `gpic-lab caption` output dirs (``params["captions"]``: one path or a
    list) keyed by image key; later files win. Missing/unreadable files and several captions per key are errors."""
    src = params.get("captions")
    if not src:
        return {}
    from gpic_lab.caption.store import caption_files, captions_by_key

    return captions_by_key(caption_files([src] if isinstance(src, str) else list(src)))


PARAMS = (
    ParamSpec("sentences", "level-pairs", DEFAULT_PARAMS["sentences"], "sentences per caption [min, max] by level",
              low=0, choices=("short", "medium", "long")),
    ParamSpec("words", "level-pairs", DEFAULT_PARAMS["words"], "words per caption [min, max] by level", low=0,
              choices=("tag", "short", "medium", "long")),
    ParamSpec("tags", "pair", DEFAULT_PARAMS["tags"], "tags per tag caption [min, max]", low=0),
    ParamSpec("tag_words", "pair", DEFAULT_PARAMS["tag_words"], "words per tag [min, max]", low=0),
    ParamSpec("ngram", "int", DEFAULT_PARAMS["ngram"], "n-gram size of the repetition check", low=1, high=16),
    ParamSpec("max_ngram_repeats", "int", DEFAULT_PARAMS["max_ngram_repeats"], "an n-gram seen this often is a "
              "loop", low=1),
    ParamSpec("min_distinct_ratio", "float", DEFAULT_PARAMS["min_distinct_ratio"], "distinct/total n-grams below "
              "this is a loop", low=0, high=1),
    ParamSpec("usable_std", "float", DEFAULT_PARAMS["usable_std"], "grey std above which an image is visible", low=0),
    ParamSpec("usable_mean", "pair", DEFAULT_PARAMS["usable_mean"], "grey mean range of a visible image", 0, 255),
    ParamSpec("duplicates", "choice", DEFAULT_PARAMS["duplicates"], "flag every image sharing a caption, or all "
              "but the first", choices=("all", "extra")),
    ParamSpec("captions", "paths", None, "captions parquet file(s) or caption output dirs overriding the records'",
              nullable=True),
)


@declare(*PARAMS)
def qc_stage(samples: list[Any], params: dict[str, Any]) -> list[Decision]:
    """Stage function (contract): one Decision per sample; reason = first failed rule, extras list them all.

    Params: any of DEFAULT_PARAMS, plus ``captions`` (captions parquet path(s)) whose caption/caption_type/
    truncated override the records' own. Images (when read) decide whether ``NOT VISIBLE.`` is legitimate.
    Duplicates are found within ``samples``; ``run_qc`` finds them across all shards.
    """
    return [_decision(r) for r in qc_rows(sample_rows(samples, params), params, params.get("_dups"))]


def _decision(r: Mapping[str, Any]) -> Decision:
    return Decision(r["key"], r["keep"], r["reason"],
                    scores={"words": r["words"], "sentences": r["sentences"], "ngram_repeats": r["max_ngram_repeats"]},
                    extra={"caption_type": r["caption_type"], "reasons": r["reasons"], "detail": r["detail"]})


def sample_rows(samples: Iterable[Any], params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """QC input rows from shard Samples (captions overridden by ``params["captions"]``; image usability)."""
    params = params or {}
    p = merged_params(params)
    overrides = _caption_overrides(params)
    rows = []
    for s in samples:
        o = overrides.get(s.key)
        usable = None
        if s.image is not None:
            try:
                usable = image_usable(s.open_image(), p)
            except Exception:  # noqa: BLE001 - undecodable images are validate's business; unknown here
                usable = None
        rows.append({"key": s.key, "caption": o["caption"] if o else s.meta.get("caption", ""),
                     "caption_type": o["caption_type"] if o else s.meta.get("caption_type", ""),
                     "truncated": bool(o.get("truncated", False)) if o else False, "usable": usable})
    return rows


def rate_table(rows: Iterable[Mapping[str, Any]]) -> Any:
    """Per level: captions, kept share, NOT VISIBLE. rate and the rate of every reason (any-of, not first-only)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=["caption_type", "n", "kept", "not_visible", *REASON_ORDER])
    out = []
    for level, g in frame.groupby("caption_type", sort=False):
        row = {"caption_type": level, "n": len(g), "kept": g["keep"].mean(), "not_visible": g["not_visible"].mean()}
        for reason in REASON_ORDER:
            row[reason] = g["reasons"].str.split(";").apply(lambda rs, r=reason: r in rs).mean()
        out.append(row)
    order = {lv: i for i, lv in enumerate(LEVELS)}
    return pd.DataFrame(out).sort_values("caption_type", key=lambda s: s.map(order).fillna(9)).reset_index(drop=True)


def worst_examples(rows: Iterable[Mapping[str, Any]], n: int = 10) -> Any:
    """The failing captions with the most broken rules first (key, level, reasons, detail, caption head)."""
    import pandas as pd

    frame = pd.DataFrame([r for r in rows if not r["keep"]])
    if frame.empty:
        return pd.DataFrame(columns=["key", "caption_type", "reasons", "detail", "caption"])
    frame = frame.assign(n_reasons=frame["reasons"].str.count(";") + 1,
                         caption=frame["caption"].str.slice(0, 120), key=frame["key"].str.slice(0, 12))
    frame = frame.sort_values(["n_reasons", "key"], ascending=[False, True])
    return frame[["key", "caption_type", "reasons", "detail", "caption"]].head(n).reset_index(drop=True)


def run_qc(paths: Sequence[str], out_dir: str, params: Mapping[str, Any] | None = None) -> tuple[Any, list[dict]]:
    """QC every shard under ``paths`` (duplicates across all of them); write the stage directory.

    Writes ``decisions.parquet``, ``counts.csv``, ``qc_params.json`` (the shards and parameters, read by
    ``caption --redo``) and ``done/<shard-stem>.done`` under ``out_dir``. Returns (decisions frame, QC rows).
    """
    from pathlib import Path

    from gpic_lab.engine.records import decisions_frame, reason_counts
    from gpic_lab.fsio import write_bytes_atomic, write_parquet_atomic
    from gpic_lab.shards.reader import iter_samples, list_shards

    params = dict(params or {})
    p = merged_params(params)
    shards = list_shards(paths)
    overrides = _caption_overrides(params)
    captions, meta, shard_of = {}, {}, {}
    for s in iter_samples(shards, images=False):
        o = overrides.get(s.key)
        captions[s.key] = o["caption"] if o else s.meta.get("caption", "")
        meta[s.key], shard_of[s.key] = s.meta, s.shard
    dups = duplicate_keys(captions, p["duplicates"])
    out, all_rows, decisions = Path(out_dir), [], []
    for shard in shards:
        rows = qc_rows(sample_rows(iter_samples([shard]), params), p, dups)
        all_rows += rows
        decisions += [_decision(r) for r in rows]
    frame = decisions_frame(decisions, "caption-qc", meta, shard_of)
    import pyarrow as pa

    write_parquet_atomic(out / "decisions.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    write_bytes_atomic(out / "counts.csv", reason_counts(frame).to_csv(index=False).encode())
    import json

    from gpic_lab.fsio import write_json_atomic

    kept = {k: v for k, v in params.items() if k != "_dups"}
    write_json_atomic(out / "qc_params.json", {"shards": [str(s) for s in shards],
                                               "params": json.loads(json.dumps(kept, default=str))})
    for shard in shards:
        write_bytes_atomic(out / "done" / f"{Path(shard).stem}.done", b"")
    return frame, all_rows
