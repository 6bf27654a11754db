"""Notebook-facing helpers of the caption audit (notebook 22): pick the answerer / judge model, check the planted
hallucinations of the sample corpus, rank the worst captions, show them with their images, hand them to the
review table and to FiftyOne."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.audits.hallucination import (
    Answerer,
    CaptionItem,
    ClassifierAnswerer,
    ReferenceAnswerer,
    VLMAnswerer,
    chain,
)
from gpic_lab.errors import UsageError
from gpic_lab.shards.schema import CAPTION_TYPES


def load_vlm(spec: str, work_dir: str | os.PathLike[str]) -> tuple[Any, Any] | None:
    """(model, processor) for a Qwen3-VL checkpoint path; "tiny" builds the tiny random model under work_dir
    (plumbing only: its answers are random); "" -> None."""
    if not spec:
        return None
    from gpic_lab.models import qwen_vl

    path = qwen_vl.build_tiny_qwen3vl(Path(work_dir) / "tiny_qwen3vl") if spec == "tiny" else Path(spec)
    return qwen_vl.load_qwen3vl(path)


def make_answerer(kind: str, references: dict[str, list[str]] | None = None, vlm: tuple[Any, Any] | None = None,
                  min_lift: float = 1.0) -> Answerer:
    """'classifier' | 'references' | 'vlm', or several joined by '+' (first non-None answer wins)."""
    parts: list[Answerer] = []
    for name in (p.strip() for p in kind.split("+") if p.strip()):
        if name == "classifier":
            parts.append(ClassifierAnswerer(min_lift=min_lift))
        elif name == "references":
            parts.append(ReferenceAnswerer(references or {}))
        elif name == "vlm":
            if vlm is None:
                raise UsageError("answerer 'vlm' needs a model (vlm_path)")
            parts.append(VLMAnswerer(*vlm))
        else:
            raise UsageError(f"unknown answerer {name!r} (classifier, references, vlm, joined by '+')")
    if not parts:
        raise UsageError("no answerer given")
    return parts[0] if len(parts) == 1 else chain(*parts)


def references_from_levels(levels: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """captions.json ({key: {level: caption, ...}}) -> {key: [captions]} (non-caption fields dropped)."""
    return {k: [v[t] for t in CAPTION_TYPES if v.get(t)] for k, v in levels.items()}


def planted_check(captions: Any, ground_truth: str | os.PathLike[str]) -> Any:
    """Planted hallucinations (ground_truth.csv rows with kind == 'hallucination', detail 'objects:a;b') among
    the audited captions: expected objects, found objects, and whether each plant was found."""
    import pandas as pd

    with open(ground_truth, newline="", encoding="utf-8") as fh:
        planted = [r for r in csv.DictReader(fh) if r["kind"] == "hallucination"]
    found = captions.groupby("key")["hallucinated_objects"].agg(lambda s: ";".join(sorted({o for v in s if v
                                                                                             for o in v.split(";")})))
    rows = []
    for r in planted:
        if r["key"] not in found.index:
            continue
        expected = set(r["detail"].removeprefix("objects:").split(";"))
        got = set(filter(None, found[r["key"]].split(";")))
        rows.append({"key": r["key"], "shard": r["shard"], "expected": ";".join(sorted(expected)),
                     "found": ";".join(sorted(got)), "all_found": expected <= got})
    return pd.DataFrame(rows, columns=["key", "shard", "expected", "found", "all_found"])


def scores_by_key(captions: Any) -> dict[str, dict[str, Any]]:
    """Per key (worst level): hallucination_rate, hallucinated_objects, verified — for FiftyOne fields."""
    out: dict[str, dict[str, Any]] = {}
    for key, g in captions.groupby("key"):
        rate = g["hallucination_rate"].max()
        objects = sorted({o for v in g["hallucinated_objects"] if v for o in v.split(";")})
        out[str(key)] = {"hallucination_rate": None if rate != rate else float(rate),
                         "hallucinated_objects": ";".join(objects) or None, "verified": int(g["verified"].sum())}
    return out


def worst_scores(table: Any) -> dict[str, dict[str, Any]]:
    """Per key of ``worst(...)``: its rank (1 = worst), level, hallucination rate and objects (FiftyOne fields)."""
    return {str(r.key): {"worst_rank": i, "worst_level": str(r.caption_type),
                         "hallucination_rate": float(r.hallucination_rate),
                         "hallucinated_objects": str(r.hallucinated_objects or "") or None}
            for i, r in enumerate(table.itertuples(), start=1)}


def worst(captions: Any, n: int = 8) -> Any:
    """The n images whose worst caption has the highest hallucination rate (then most hallucinated objects);
    one row per key (its worst level)."""
    bad = captions[captions["hallucinated"] > 0]
    bad = bad.sort_values(["hallucination_rate", "hallucinated"], ascending=False, kind="stable")
    return bad.drop_duplicates("key").head(n).reset_index(drop=True)


def _image_of(items: Sequence[CaptionItem], key: str) -> Any:
    return next((it.image for it in items if it.key == key and it.image is not None), None)


def worst_figure(items: Sequence[CaptionItem], table: Any, cols: int = 4) -> Any:
    """Matplotlib grid: each worst caption's image, its level, hallucinated objects and caption text."""
    import textwrap

    import matplotlib.pyplot as plt

    n = max(len(table), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 5.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, table.itertuples(), strict=False):
        image = _image_of(items, r.key)
        if image is not None:
            ax.imshow(image)
        lines = textwrap.wrap(str(r.caption), 52)
        text = "\n".join(lines[:4]) + (" ..." if len(lines) > 4 else "")
        ax.set_title(f"{r.key[:10]} · {r.caption_type} · rate {r.hallucination_rate:.2f}\n"
                     f"hallucinated: {r.hallucinated_objects}", fontsize=9, color="#a00000")
        ax.text(0.5, -0.02, text, transform=ax.transAxes, ha="center", va="top", fontsize=7.5)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.93, bottom=0.08, wspace=0.08, hspace=0.55)
    return fig


def review_items(items: Sequence[CaptionItem], table: Any, thumb: int = 192) -> list[dict[str, Any]]:
    """Rows for `gpic_lab.audits.review.ReviewTable`: id = key:level, caption, JPEG thumbnail, audit columns."""
    out = []
    for r in table.itertuples():
        image = _image_of(items, r.key)
        data = b""
        if image is not None:
            buf = io.BytesIO()
            thumb_img = image.copy()
            thumb_img.thumbnail((thumb, thumb))
            thumb_img.save(buf, format="JPEG", quality=85)
            data = buf.getvalue()
        out.append({"id": f"{r.key}:{r.caption_type}", "caption": r.caption, "image": data,
                    "hallucinated_objects": r.hallucinated_objects, "hallucination_rate": r.hallucination_rate})
    return out


def judge_inputs(items: Sequence[CaptionItem], references: dict[str, list[str]], limit: int,
                 reference_level: str = "long") -> tuple[list[Any], list[str], list[str | None]]:
    """The first `limit` items (images, captions) with a reference: the key's `reference_level` caption when the
    item is another level, else None (the judge then scores without one)."""
    chosen = [it for it in items if it.image is not None][:limit]
    idx = CAPTION_TYPES.index(reference_level) if reference_level in CAPTION_TYPES else -1
    refs: list[str | None] = []
    for it in chosen:
        levels = references.get(it.key) or []
        ref = levels[idx] if 0 <= idx < len(levels) and len(levels) == len(CAPTION_TYPES) else None
        refs.append(ref if ref != it.caption else None)
    return [it.image for it in chosen], [it.caption for it in chosen], refs
