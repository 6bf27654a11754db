"""Generated copies of real images: the inputs of the collision model and of ``bench dedup``.

``write_copies_shard`` reads every image of some shards and writes one GPIC shard holding each original plus
``per_image`` seeded random copies of it (the edits copy detection is meant to see through: resize, JPEG
recompression, crop, brightness/contrast, PNG re-encode, mild blur). Every copy has fewer pixels than its original,
so under GPIC's keep-the-highest-resolution rule the original is the right survivor. A shard (not loose files)
so that the per-shard embedding cache serves reruns. The ground truth comes back as a table (key, group =
original key, transform); records keep their original's license fields.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TRANSFORMS = ("resize", "jpeg", "crop", "brightness", "contrast", "png", "blur")


def make_copy(img: Any, transform: str, rng: np.random.Generator) -> tuple[Any, str, int]:
    """A copy of a PIL image: (image, format, JPEG quality). Always a little smaller than the original."""
    from PIL import ImageEnhance, ImageFilter

    rgb = img.convert("RGB")
    w, h = rgb.size
    shrink = float(rng.uniform(0.5, 0.9)) if transform == "resize" else float(rng.uniform(0.9, 0.98))
    out = rgb.resize((max(8, round(w * shrink)), max(8, round(h * shrink))), 3)
    quality = 90
    if transform == "jpeg":
        quality = int(rng.integers(20, 60))
    elif transform == "crop":
        keep = float(rng.uniform(0.8, 0.95))
        cw, ch = round(w * keep), round(h * keep)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = rgb.crop((x0, y0, x0 + cw, y0 + ch))
    elif transform == "brightness":
        out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.75, 1.3)))
    elif transform == "contrast":
        out = ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.7, 1.3)))
    elif transform == "blur":
        out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    return out, ("png" if transform == "png" else "jpg"), quality


def _encode(img: Any, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG" if fmt == "png" else "JPEG", **({} if fmt == "png" else {"quality": quality}))
    return buf.getvalue()


def _record(key: str, img: Any, meta: dict[str, Any]) -> dict[str, Any]:
    from gpic_lab.shards.schema import new_record

    return new_record(key, img.width, img.height, str(meta.get("license", "")), str(meta.get("license_url", "")),
                      str(meta.get("attribution", "")), str(meta.get("retrieved_at", "")),
                      str(meta.get("caption_type", "")), str(meta.get("caption", "")), [])


def write_copies_shard(shards: Sequence[str | os.PathLike[str]], out_tar: str | os.PathLike[str],
                       per_image: int = 4, seed: int = 0) -> Any:
    """Write originals + ``per_image`` copies each to ``out_tar``; returns the truth table (key, group, transform).

    Transforms cycle through ``TRANSFORMS`` from a seeded offset per original, with seeded parameters. Images that
    do not decode are left out. A copy whose bytes equal another sample's is dropped (keys are byte hashes)."""
    import pandas as pd

    from gpic_lab.core.images import to_8bit
    from gpic_lab.shards.reader import iter_samples, list_shards
    from gpic_lab.shards.writer import write_shard

    rng = np.random.default_rng(seed)
    entries: dict[str, tuple[str, dict[str, Any], bytes, str]] = {}
    truth: list[dict[str, str]] = []
    for s in iter_samples(list_shards(list(shards))):
        try:
            img = to_8bit(s.open_image())
            img.load()
        except Exception:  # noqa: BLE001 - the collision inputs skip what does not decode
            continue
        if s.key in entries:
            continue
        entries[s.key] = (s.key, _record(s.key, img, s.meta), s.image or b"", s.image_ext)
        truth.append({"key": s.key, "group": s.key, "transform": "original"})
        start = int(rng.integers(len(TRANSFORMS)))
        for j in range(per_image):
            transform = TRANSFORMS[(start + j) % len(TRANSFORMS)]
            out, fmt, quality = make_copy(img, transform, rng)
            data = _encode(out, fmt, quality)
            key = hashlib.sha256(data).hexdigest()
            if key not in entries:
                entries[key] = (key, _record(key, out, s.meta), data, fmt)
                truth.append({"key": key, "group": s.key, "transform": transform})
    Path(out_tar).parent.mkdir(parents=True, exist_ok=True)
    write_shard(out_tar, entries.values())
    return pd.DataFrame(truth, columns=["key", "group", "transform"])


def copy_similarities(emb: Any, truth: Any) -> tuple[Any, float]:
    """Per copy: its transform and cosine to its original; plus the largest cosine between different groups."""
    import pandas as pd

    pos = {k: i for i, k in enumerate(emb.keys.tolist())}
    t = truth[truth["key"].isin(pos) & truth["group"].isin(pos)]
    copies = t[t["transform"] != "original"]
    sims = [float(emb.vectors[pos[k]] @ emb.vectors[pos[g]]) for k, g in zip(copies["key"], copies["group"], strict=True)]
    group = dict(zip(t["key"], t["group"], strict=True))
    g = np.array([group.get(k, k) for k in emb.keys.tolist()])
    s = emb.vectors @ emb.vectors.T
    cross = s[g[:, None] != g[None, :]]
    rows = pd.DataFrame({"transform": copies["transform"].to_numpy(), "similarity": sims})
    return rows, float(cross.max()) if cross.size else float("nan")
