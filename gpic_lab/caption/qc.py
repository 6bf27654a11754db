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

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpic_lab.engine.records import Decision
from gpic_lab.errors import UsageError

NOT_VISIBLE = "NOT VISIBLE."
REASON_ORDER = ("empty", "bad-type", "not-visible", "not-visible-image", "truncated", "repetition",
                "duplicate-caption", "meta-opening", "forbidden-word", "tag-format", "length")
LEVELS = ("tag", "short", "medium", "long")

# Bounds per level: GPIC's prompt numbers (short ~12-25 words, medium ~25-60, long 5-7 sentences, tags 3-8 of
# 1-3 words) widened by a tolerance, since the prompts say "~" and the measured medians sit inside them.
DEFAULT_PARAMS: dict[str, Any] = {
    "sentences": {"short": [1, 2], "medium": [2, 3], "long": [5, 7]},
    "words": {"tag": [3, 24], "short": [8, 35], "medium": [18, 80], "long": [40, 320]},
    "tags": [3, 8],
    "tag_words": [1, 3],
    "ngram": 3,               # n-gram size for the repetition check
    "max_ngram_repeats": 3,   # an n-gram seen this many times (or more) is a loop
    "min_distinct_ratio": 0.5,  # distinct / total n-grams below this (with >= 12 n-grams) is a loop
    "usable_std": 6.0,        # grayscale std above which an image counts as visible (for NOT VISIBLE.)
    "usable_mean": [12.0, 243.0],  # grayscale mean range of a visible image
    "duplicates": "all",      # "all": flag every image sharing a caption; "extra": keep the first
}

FORBIDDEN = re.compile(r"\b(image|images|photo|photos|photograph|photographs|picture|pictures)\b", re.I)
FOREGROUND = re.compile(r"\bforeground\b", re.I)
META_OPENING = re.compile(
    r"^\s*(?:(?:the|this)\s+(?:image|photo|photograph|picture|illustration|scene|frame)\s+"
    r"(?:shows|depicts|features|displays|contains|captures|presents|is|illustrates)\b"
    r"|in\s+(?:this|the)\s+(?:image|photo|photograph|picture)\b|here\s+(?:is|we\s+see)\b"
    r"|(?:this|it)\s+is\s+an?\s+(?:image|photo|photograph|picture)\b)", re.I)
TAG_STOPWORDS = frozenset({"a", "an", "the", "with", "on", "in", "and", "of", "at", "by", "for", "to", "from",
                           "under", "over", "near", "behind", "beside", "into", "onto", "while", "or", "is", "are"})
TAG_IDIOMS = ("black and white", "salt and pepper", "rock and roll")  # fixed phrases, not connectives
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\u201d]*\s+(?=[\"'(\u201c]?[A-Z0-9])")
TERMINAL = re.compile(r"[.!?][\"')\u201d\]]*\s*$")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


@dataclass(frozen=True, slots=True)
class CaptionCheck:
    """The outcome of the per-caption rules (duplicates are checked across captions separately)."""

    reasons: tuple[str, ...]
    words: int
    sentences: int
    tags: int
    max_ngram_repeats: int
    details: tuple[str, ...]


def merged_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_PARAMS updated by ``params`` (unknown names are a UsageError)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_PARAMS.items()}
    for key, value in (params or {}).items():
        if key in ("captions", "_dups"):
            continue
        if key not in out:
            raise UsageError(f"caption-qc: unknown parameter {key!r} (known: {', '.join(sorted(out))})")
        if isinstance(out[key], dict) and not isinstance(value, dict):
            raise UsageError(f"caption-qc: {key} must be a mapping level -> [min, max], got {value!r}")
        if isinstance(out[key], dict) and set(value) - set(out[key]):
            raise UsageError(f"caption-qc: {key}: unknown level(s) {sorted(set(value) - set(out[key]))}")
        out[key] = {**out[key], **value} if isinstance(out[key], dict) else value
    if out["duplicates"] not in ("all", "extra"):
        raise UsageError(f"caption-qc: duplicates must be 'all' or 'extra', got {out['duplicates']!r}")
    ranges = {f"{k}.{lv}": v for k in ("sentences", "words") for lv, v in out[k].items()}
    ranges.update({k: out[k] for k in ("tags", "tag_words", "usable_mean")})
    for name, v in ranges.items():
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v) and v[0] <= v[1]):
            raise UsageError(f"caption-qc: {name} must be [min, max] numbers with min <= max, got {v!r}")
    for name in ("ngram", "max_ngram_repeats", "min_distinct_ratio", "usable_std"):
        if not _is_number(out[name]) or out[name] < 0:
            raise UsageError(f"caption-qc: {name} must be a number >= 0, got {out[name]!r}")
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption (split after . ! ? followed by a capital letter or digit)."""
    return [s for s in SENTENCE_END.split(text.strip()) if s.strip()]


def words_of(text: str) -> list[str]:
    return WORD.findall(text)


def ngram_repeats(tokens: Sequence[str], n: int) -> tuple[int, float]:
    """(max count of any n-gram, distinct/total n-gram ratio) over lowercase tokens."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0, 1.0
    counts = Counter(grams)
    return max(counts.values()), len(counts) / len(grams)


def _strip_idioms(tag: str) -> str:
    for idiom in TAG_IDIOMS:
        tag = tag.replace(idiom, "x")
    return tag


def _tag_problems(caption: str, p: Mapping[str, Any]) -> tuple[list[str], list[str], int]:
    reasons, details = [], []
    tags = [t.strip() for t in caption.split(",")]
    if caption != caption.lower():
        reasons.append("tag-format")
        details.append("not all lowercase")
    if re.search(r"[^\w\s,'\-]", caption) or "\n" in caption:
        reasons.append("tag-format")
        details.append("punctuation other than commas")
    plain = [_strip_idioms(t.lower()) for t in tags]
    stop = sorted({w for t in plain for w in t.split() if w in TAG_STOPWORDS})
    if stop:
        reasons.append("tag-format")
        details.append(f"articles/connectives: {', '.join(stop)}")
    lo, hi = p["tags"]
    wlo, whi = p["tag_words"]
    if any(not t for t in tags):
        reasons.append("tag-format")
        details.append("empty tag")
    if not lo <= len(tags) <= hi:
        reasons.append("length")
        details.append(f"{len(tags)} tags (want {lo}-{hi})")
    long_tags = [t for t in tags if t and not wlo <= len(t.split()) <= whi]
    if long_tags:
        reasons.append("length")
        details.append(f"tags of more than {whi} words: {long_tags[0]!r}")
    dup = [t for t, c in Counter(t.lower() for t in tags if t).items() if c > 1]
    if dup:
        reasons.append("repetition")
        details.append(f"repeated tag {dup[0]!r}")
    return reasons, details, len(tags)


def check_caption(caption: str, caption_type: str, params: Mapping[str, Any] | None = None,
                  truncated: bool = False, usable: bool | None = None) -> CaptionCheck:
    """Apply every per-caption rule of ``caption_type``.

    Args:
        truncated: the generator stopped at max_new_tokens (from the captions parquet).
        usable: whether the image is visible enough to caption (None = unknown, NOT VISIBLE. then accepted).
    """
    p = params if params is not None and "sentences" in params else merged_params(params)
    text = caption.strip()
    reasons: list[str] = []
    details: list[str] = []
    if caption_type not in LEVELS:
        return CaptionCheck(("bad-type",), 0, 0, 0, 0, (f"caption_type {caption_type!r}",))
    if not text:
        return CaptionCheck(("empty",), 0, 0, 0, 0, ("empty caption",))
    words = words_of(text)
    sentences = split_sentences(text)
    if "NOT VISIBLE" in text.upper() and len(words) <= 3:
        if text != NOT_VISIBLE:
            reasons.append("not-visible")
            details.append(f"malformed {NOT_VISIBLE!r}: {text!r}")
        elif usable is False:  # the prescribed answer, but an image with nothing to caption leaves the dataset
            reasons.append("not-visible-image")
            details.append("NOT VISIBLE. for an image that is not usable")
        else:
            reasons.append("not-visible")
            details.append("NOT VISIBLE. for a visible image" if usable else "NOT VISIBLE. (image not checked)")
        return CaptionCheck(tuple(reasons), len(words), 1, 0, 0, tuple(details))
    if truncated:
        reasons.append("truncated")
        details.append("generation hit max_new_tokens")
    if caption_type != "tag" and not TERMINAL.search(text):
        reasons.append("truncated")
        details.append(f"ends without terminal punctuation: ...{text[-25:]!r}")
    repeats, distinct = ngram_repeats([w.lower() for w in words], p["ngram"])
    if repeats >= p["max_ngram_repeats"] or (len(words) - p["ngram"] + 1 >= 12 and distinct < p["min_distinct_ratio"]):
        reasons.append("repetition")
        details.append(f"a {p['ngram']}-gram repeats {repeats}x, distinct ratio {distinct:.2f}")
    if META_OPENING.search(text):
        reasons.append("meta-opening")
        details.append(f"meta opening {text[:30]!r}")
    found = FORBIDDEN.findall(text)
    if caption_type == "long":
        found += FOREGROUND.findall(text)
    if found:
        reasons.append("forbidden-word")
        details.append(f"forbidden words: {', '.join(sorted({f.lower() for f in found}))}")
    n_tags = 0
    if caption_type == "tag":
        r, d, n_tags = _tag_problems(text, p)
        reasons += r
        details += d
    else:
        slo, shi = p["sentences"][caption_type]
        if not slo <= len(sentences) <= shi:
            reasons.append("length")
            details.append(f"{len(sentences)} sentences (want {slo}-{shi})")
    wlo, whi = p["words"][caption_type]
    if not wlo <= len(words) <= whi:
        reasons.append("length")
        details.append(f"{len(words)} words (want {wlo}-{whi})")
    ordered = tuple(r for r in REASON_ORDER if r in reasons)
    return CaptionCheck(ordered, len(words), len(sentences), n_tags, repeats, tuple(details))


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
