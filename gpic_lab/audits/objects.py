"""Rule-based extraction of the objects, attributes and counts a caption asserts, from versioned word lists.

The extractor is deliberately simple and documented (`gpic_lab/wordlists/objects.txt`, `attributes.txt`): it
finds vocabulary nouns (two-word names first, plurals derived), reads the count word and attribute words right
before each noun, and marks mentions inside a negation scope ("no", "without", ... up to the end of the sentence)
as negated. Tag-style captions ("tabby cat, green eyes") work the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from gpic_lab.errors import GpicError

_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+|[.;:!?]")
_SENTENCE_END = {".", ";", "!", "?", ":"}


@dataclass(frozen=True)
class Vocabulary:
    """Object words (phrase tuple -> concept), ImageNet ids per concept, attribute/count/negator words."""

    phrases: dict[tuple[str, ...], str]
    imagenet: dict[str, tuple[int, ...]]
    attributes: dict[str, str]
    counts: dict[str, int]
    negators: frozenset[str]
    version: str


@dataclass(frozen=True)
class Mention:
    """One object mention: concept, the words used, asserted count (None: not stated), attributes, negation."""

    concept: str
    word: str
    count: int | None
    attributes: tuple[str, ...]
    negated: bool


def _plurals(word: str) -> set[str]:
    last = word.split()[-1]
    head = word[: len(word) - len(last)]
    forms = {last + "s", last + "es"}
    if last.endswith("y"):
        forms.add(last[:-1] + "ies")
    if last.endswith("f"):
        forms.add(last[:-1] + "ves")
    return {head + f for f in forms}


def _read(name: str) -> tuple[list[str], str]:
    text = resources.files("gpic_lab.audits").joinpath("wordlists").joinpath(name).read_text(encoding="utf-8")
    version = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("# version:")), "?")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")], version


def _ids(spec: str, line: str) -> tuple[int, ...]:
    if spec.strip() == "-":
        return ()
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise GpicError(f"wordlists/objects.txt: bad ImageNet ids {spec!r} in line {line!r}")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(out)


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """Load the packaged object and attribute word lists (cached)."""
    phrases: dict[tuple[str, ...], str] = {}
    imagenet: dict[str, tuple[int, ...]] = {}
    lines, version = _read("objects.txt")
    for line in lines:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3:
            raise GpicError(f"wordlists/objects.txt: expected 'concept | words | ids', got {line!r}")
        concept, words, ids = parts
        imagenet[concept] = _ids(ids, line)
        for word in (w.strip().lower() for w in words.split(",") if w.strip()):
            for form in {word} | _plurals(word):
                phrases.setdefault(tuple(form.split()), concept)
    attributes: dict[str, str] = {}
    counts: dict[str, int] = {}
    negators: set[str] = set()
    attr_lines, attr_version = _read("attributes.txt")
    for line in attr_lines:
        kind, _, words = line.partition(":")
        for word in (w.strip().lower() for w in words.split(",") if w.strip()):
            if kind == "count":
                name, _, value = word.partition("=")
                counts[name] = int(value)
            elif kind == "negator":
                negators.add(word)
            else:
                attributes[word] = kind
    return Vocabulary(phrases, imagenet, attributes, counts, frozenset(negators), f"{version}/{attr_version}")


def extract_mentions(caption: str, vocab: Vocabulary | None = None) -> list[Mention]:
    """Object mentions in reading order (tag captions: each comma-separated tag is its own clause)."""
    vocab = vocab or vocabulary()
    tokens = _TOKEN.findall(caption.lower())
    longest = max(len(p) for p in vocab.phrases)
    mentions: list[Mention] = []
    negated = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SENTENCE_END:
            negated, i = False, i + 1
            continue
        if tok in vocab.negators:
            negated = True
        match = next(((n, vocab.phrases[tuple(tokens[i:i + n])]) for n in range(longest, 0, -1)
                      if tuple(tokens[i:i + n]) in vocab.phrases), None)
        if match is None:
            i += 1
            continue
        n, concept = match
        attrs: list[str] = []
        count = None
        j = i - 1
        while j >= 0 and tokens[j] in vocab.attributes:
            attrs.insert(0, tokens[j])
            j -= 1
        if j >= 0 and tokens[j] in vocab.counts:
            count = vocab.counts[tokens[j]]
        elif j >= 1 and tokens[j] == "of" and tokens[j - 1] in vocab.counts:  # "a pair of skis"
            count = vocab.counts[tokens[j - 1]]
        mentions.append(Mention(concept, " ".join(tokens[i:i + n]), count, tuple(attrs), negated))
        i += n
    return mentions


def asserted(caption: str) -> dict[str, Mention]:
    """The first non-negated mention of each concept a caption asserts."""
    out: dict[str, Mention] = {}
    for m in extract_mentions(caption):
        if not m.negated:
            out.setdefault(m.concept, m)
    return out


def denied(caption: str) -> set[str]:
    """Concepts a caption explicitly denies ("no birds")."""
    return {m.concept for m in extract_mentions(caption) if m.negated}
