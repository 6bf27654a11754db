"""Bias audit of caption text and image faces.

Caption side: documented, versioned word lists (`gpic_lab/audits/wordlists/{gender,age,ethnicity,religion,disability,
occupations,activities,settings}.txt`) give, per caption, which categories it mentions; frequencies (share of
captions, Wilson 95% intervals), co-occurrence of gender/age terms with occupations, activities and settings,
and breakdowns by source, license and caption type. Image side: face counts from OpenCV's Haar cascade
(`haarcascade_frontalface_default.xml`, shipped in opencv-python-headless), and how face presence relates to
captions mentioning a person. Intervals are shown everywhere so a sample of 15 images is not over-read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from gpic_lab.core.images import to_8bit
from gpic_lab.errors import GpicError, UsageError

LISTS = ("gender", "age", "ethnicity", "religion", "disability", "occupations", "activities", "settings")
PERSON_NOUNS = frozenset("man men woman women person people child children boy boys girl girls kid kids baby "
                         "babies adult adults individual individuals lady ladies gentleman gentlemen".split())
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")


@dataclass(frozen=True)
class WordList:
    """One versioned list: category -> phrases (token tuples); phrases needing a following person noun."""

    name: str
    version: str
    categories: dict[str, tuple[tuple[str, ...], ...]]
    person_only: frozenset[tuple[str, ...]]


@cache
def wordlist(name: str) -> WordList:
    """Load a packaged bias word list by name (see LISTS)."""
    if name not in LISTS:
        raise UsageError(f"unknown word list {name!r} (have {', '.join(LISTS)})")
    text = resources.files("gpic_lab.audits").joinpath("wordlists").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    version = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("# version:")), "")
    if not version:
        raise GpicError(f"wordlists/{name}.txt: no '# version:' line")
    cats: dict[str, tuple[tuple[str, ...], ...]] = {}
    person_only: set[tuple[str, ...]] = set()
    for line in (ln.strip() for ln in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        cat, sep, terms = line.partition(":")
        if not sep:
            raise GpicError(f"wordlists/{name}.txt: expected 'category: terms', got {line!r}")
        phrases = []
        for term in (t.strip().lower() for t in terms.split(",") if t.strip()):
            words = tuple(_TOKEN.findall(term.removesuffix("@person")))
            phrases.append(words)
            if term.endswith("@person"):
                person_only.add(words)
        cats[cat.strip()] = tuple(phrases)
    return WordList(name, version, cats, frozenset(person_only))


def versions() -> dict[str, str]:
    """The version of every bias word list (record it with results)."""
    return {n: wordlist(n).version for n in LISTS}


def hits(caption: str, name: str) -> list[tuple[str, str]]:
    """(category, term) for every occurrence of the list's terms in the caption, in reading order."""
    wl = wordlist(name)
    tokens = _TOKEN.findall(caption.lower())
    out = []
    for i in range(len(tokens)):
        for cat, phrases in wl.categories.items():
            for ph in phrases:
                if tuple(tokens[i:i + len(ph)]) != ph:
                    continue
                if ph in wl.person_only and (i + len(ph) >= len(tokens) or tokens[i + len(ph)] not in PERSON_NOUNS):
                    continue
                out.append((cat, " ".join(ph)))
    return out


def caption_table(rows: Sequence[dict[str, Any]], lists: Sequence[str] = LISTS) -> Any:
    """One row per caption (rows need `key` and `caption`; other columns are kept): `<list>` = ';'-joined
    categories hit, `<list>_terms` = the terms, and `person` = the caption mentions a person."""
    import pandas as pd

    out = []
    for r in rows:
        row = dict(r)
        for name in lists:
            found = hits(str(r["caption"]), name)
            row[name] = ";".join(sorted({c for c, _ in found}))
            row[f"{name}_terms"] = ";".join(sorted({t for _, t in found}))
        nouns = set(_TOKEN.findall(str(r["caption"]).lower())) & PERSON_NOUNS
        row["person"] = bool(nouns) or bool(row.get("gender"))
        out.append(row)
    return pd.DataFrame(out)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaNs for n == 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(values: Sequence[float], stat: Callable[[Any], float] | None = None, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (default: mean) over `values`."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    fn = stat or np.mean
    rng = np.random.default_rng(seed)
    boots = np.array([fn(x[rng.integers(0, x.size, x.size)]) for _ in range(n_boot)])
    return float(np.quantile(boots, (1 - level) / 2)), float(np.quantile(boots, 1 - (1 - level) / 2))


def frequencies(table: Any, name: str, by: str | None = None) -> Any:
    """Per category (and group): captions mentioning it, share of captions, Wilson 95% interval."""
    import pandas as pd

    if name not in table.columns:
        raise UsageError(f"frequencies: the table has no {name!r} column")
    if by is not None and by not in table.columns:
        raise UsageError(f"frequencies: no column {by!r}")
    groups = table.groupby(by, dropna=False) if by else [("all", table)]
    rows = []
    for group, g in groups:
        n = len(g)
        for cat in wordlist(name).categories:
            k = int(g[name].str.split(";").map(lambda cs, c=cat: c in cs).sum())
            lo, hi = wilson(k, n)
            rows.append({"group": group, "category": cat, "captions": k, "of": n, "share": k / n if n else math.nan,
                         "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows)
    return out.rename(columns={"group": by}) if by else out.drop(columns="group")


def frequency_table(table: Any, lists: Sequence[str]) -> Any:
    """`frequencies` of several lists stacked, with a `list` column first."""
    import pandas as pd

    parts = [frequencies(table, name).assign(list=name) for name in lists]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out[["list", *[c for c in out.columns if c != "list"]]] if len(out) else out


def rows_from_items(items: Sequence[Any]) -> list[dict[str, Any]]:
    """caption_table rows from caption items (key, caption, caption_type and their meta columns)."""
    return [{"key": it.key, "caption": it.caption, "caption_type": it.caption_type, **it.meta} for it in items]


def cooccurrence(table: Any, a: str = "gender", b: str = "occupations") -> Any:
    """Captions mentioning each (category of a) × (term of b) pair."""
    import pandas as pd

    rows = []
    for r in table.itertuples():
        cats = [c for c in getattr(r, a).split(";") if c]
        terms = [t for t in getattr(r, f"{b}_terms").split(";") if t]
        rows.extend({a: c, b: t} for c in cats for t in terms)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).value_counts().unstack(fill_value=0)


def _cascade(name: str) -> Any:
    import cv2

    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise GpicError(f"bias: cannot load the Haar cascade {path}")
    return cascade


def detect_faces(images: dict[str, Any], max_side: int = 640, min_neighbors: int = 8, min_size_frac: float = 0.1,
                 verify_eyes: bool = True) -> dict[str, list[tuple[int, int, int, int]]]:
    """Frontal face boxes (x, y, w, h in original pixels) per image, by key, from OpenCV's Haar cascade
    `haarcascade_frontalface_default.xml` (shipped in opencv-python-headless). Faces smaller than
    `min_size_frac` of the short side are ignored; with `verify_eyes` a face is kept only when the eye cascade
    finds an eye in its upper part (removes texture false positives); profiles are not found."""
    import numpy as np

    cascade = _cascade("haarcascade_frontalface_default.xml")
    eyes = _cascade("haarcascade_eye.xml") if verify_eyes else None
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    for key, image in images.items():
        im = to_8bit(image).convert("L")
        scale = min(1.0, max_side / max(im.size))
        if scale < 1.0:
            im = im.resize((round(im.width * scale), round(im.height * scale)))
        side = max(24, int(min_size_frac * min(im.size)))
        gray = np.asarray(im)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(side, side))
        if eyes is not None:
            boxes = [(x, y, w, h) for x, y, w, h in boxes
                     if len(eyes.detectMultiScale(gray[y:y + h * 5 // 8, x:x + w], 1.1, 3,
                                                  minSize=(max(8, w // 10),) * 2))]
        out[key] = [tuple(int(round(v / scale)) for v in b) for b in boxes]  # type: ignore[misc]
    return out


def face_counts(images: dict[str, Any], **kwargs: Any) -> dict[str, int]:
    """Number of frontal faces per image (see detect_faces)."""
    return {k: len(v) for k, v in detect_faces(images, **kwargs).items()}


def faces_figure(images: dict[str, Any], boxes: dict[str, list[tuple[int, int, int, int]]], cols: int = 4) -> Any:
    """Matplotlib grid of the images with faces, boxes drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    keys = [k for k, b in boxes.items() if b]
    cols = max(1, min(cols, len(keys)))
    rows = max(1, (len(keys) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.imshow(images[key])
        for x, y, w, h in boxes[key]:
            ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="#ff3030", linewidth=2))
        ax.set_title(f"{key[:10]} · {len(boxes[key])} face(s)", fontsize=9)
    if not keys:
        axes.flat[0].text(0.5, 0.5, "no faces found", ha="center", va="center")
    fig.tight_layout()
    return fig


def face_vs_mentions(table: Any, faces: dict[str, int]) -> Any:
    """Per image: faces found and whether any of its captions mentions a person; crosstab with shares + CIs."""
    import pandas as pd

    per_key = table.groupby("key")["person"].any().rename("caption_mentions_person").to_frame()
    per_key["faces"] = per_key.index.map(lambda k: faces.get(k, 0))
    per_key["face_found"] = per_key["faces"] > 0
    rows = []
    for found, g in per_key.groupby("face_found"):
        k, n = int(g["caption_mentions_person"].sum()), len(g)
        lo, hi = wilson(k, n)
        rows.append({"face_found": bool(found), "images": n, "captions_mention_person": k,
                     "share": k / n, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows), per_key.reset_index()


def frequency_figure(freq: Any, title: str) -> Any:
    """Matplotlib: share of captions per category with Wilson 95% error bars."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(freq) + 1.4))
    y = np.arange(len(freq))
    share = freq["share"].to_numpy()
    err = np.vstack([share - freq["ci_low"].to_numpy(), freq["ci_high"].to_numpy() - share])
    ax.barh(y, share, xerr=err, color="#4f81bd", capsize=3, ecolor="#333333")
    ax.set_yticks(y, [f"{r.list}: {r.category}" if "list" in freq.columns else r.category
                      for r in freq.itertuples()])
    for yi, r in zip(y, freq.itertuples(), strict=True):
        ax.text(r.ci_high + 0.01, yi, f"{r.captions}/{r.of}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.invert_yaxis()
    ax.set_xlabel("share of captions (95% Wilson interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
