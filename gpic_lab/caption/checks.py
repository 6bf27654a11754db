"""Rule checks of one caption against its level, from GPIC's published caption prompts (paper Figs. F.1-F.4).

``check_caption`` returns every rule a caption breaks; the ``caption-qc`` stage (``gpic_lab.caption.qc``) turns them
into decisions. OUR ASSUMPTIONS: the widened bounds in ``DEFAULT_PARAMS`` (GPIC's prompts say "~"), see
``gpic_lab.caption.qc`` for the policies.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
