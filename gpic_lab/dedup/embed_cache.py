"""Per-shard embedding cache: ``embed_shards`` embeds each shard once per encoder configuration and stores
``<cache_dir>/<shard stem>.<encoder>.<hash>.npz`` (keys, vectors, sizes, byte hashes, license fields, unreadable
images), the hash covering the shard identity (``gpic_lab.shards.sources.identity``: path, size and mtime of a
local shard; URL, size and ETag / Last-Modified of a remote one) and ``Encoder.cache_id()`` (encoder, weights
SHA-256, size, crop, dtype). A remote shard whose server reports neither an ETag nor a modification time is
embedded every time (never cached: a changed file could not be told apart)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gpic_lab.dedup.embed import Encoder


@dataclass
class Embeddings:
    """Embeddings of a set of shards with what the rule needs: resolution, byte hash and license text."""

    keys: np.ndarray  # str [N]
    shards: np.ndarray  # str [N]
    vectors: np.ndarray  # float32 [N, D]
    width: np.ndarray  # int [N]
    height: np.ndarray  # int [N]
    sha256: np.ndarray  # str [N], of the image bytes
    meta: list[dict[str, Any]]  # license, license_url, attribution per row
    skipped: list[dict[str, Any]] = field(default_factory=list)  # unreadable images: key, shard, reason, detail
    sources: list[str] = field(default_factory=list)  # cache files holding the vectors when not loaded

    def chunks(self) -> Callable[[], Iterator[np.ndarray]]:
        """A re-readable stream of the vectors, one shard at a time (from the cache files when not loaded)."""
        if not self.sources:
            return lambda: iter([self.vectors])
        return lambda: (_cached_vectors(p) for p in self.sources)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def pixels(self) -> np.ndarray:
        return self.width.astype(np.int64) * self.height.astype(np.int64)

    @staticmethod
    def concat(parts: Iterable[Embeddings]) -> Embeddings:
        parts = list(parts)
        if not parts:
            return Embeddings(*(np.zeros(0, str),) * 2, np.zeros((0, 0), np.float32), *(np.zeros(0, int),) * 2,
                              np.zeros(0, str), [])
        return Embeddings(np.concatenate([p.keys for p in parts]), np.concatenate([p.shards for p in parts]),
                          np.concatenate([p.vectors for p in parts]), np.concatenate([p.width for p in parts]),
                          np.concatenate([p.height for p in parts]), np.concatenate([p.sha256 for p in parts]),
                          [m for p in parts for m in p.meta], [k for p in parts for k in p.skipped],
                          [s for p in parts for s in p.sources])


def cache_path(shard: str | os.PathLike[str], encoder: Encoder, cache_dir: str | os.PathLike[str]) -> Path | None:
    """<cache_dir>/<shard stem>.<encoder>.<hash of shard identity + encoder cache id>.npz, or None when the shard
    (a URL without ETag or modification time) cannot be identified."""
    from gpic_lab.shards.sources import identity

    ident = identity(str(shard))
    if ident is None:
        return None
    blob = json.dumps({"shard": ident, "encoder": encoder.cache_id()}, sort_keys=True)
    stem = str(shard).rstrip("/").rsplit("/", 1)[-1].removesuffix(".tar")
    return Path(cache_dir) / f"{stem}.{encoder.name}.{hashlib.sha256(blob.encode()).hexdigest()[:16]}.npz"


def embed_shard(shard: str, encoder: Encoder) -> Embeddings:
    """Decode every image of one shard and embed it. A broken tar raises ShardError; an image that does not
    decode is recorded in ``skipped`` (reason ``unreadable:image-decode``) and the shard goes on."""
    from gpic_lab.core.images import to_8bit
    from gpic_lab.shards.reader import iter_samples

    keys, imgs, widths, heights, shas, metas, skipped = [], [], [], [], [], [], []
    for s in iter_samples([shard]):
        try:
            img = to_8bit(s.open_image())
            img.load()
        except Exception as exc:  # noqa: BLE001 - any decode failure is located and counted
            skipped.append({"key": s.key, "shard": str(shard), "reason": "unreadable:image-decode",
                            "detail": f"{s.key}.{s.image_ext}: {exc.__class__.__name__}: {exc}",
                            "meta": {k: s.meta.get(k, "") for k in ("license", "license_url", "attribution")}})
            continue
        keys.append(s.key)
        imgs.append(img)
        widths.append(img.width)
        heights.append(img.height)
        shas.append(hashlib.sha256(s.image or b"").hexdigest())
        metas.append({k: s.meta.get(k, "") for k in ("license", "license_url", "attribution")})
    vectors = encoder.encode(imgs) if imgs else np.zeros((0, encoder.dim), np.float32)
    return Embeddings(np.array(keys, dtype=str), np.array([str(shard)] * len(keys), dtype=str), vectors,
                      np.array(widths, np.int64), np.array(heights, np.int64), np.array(shas, dtype=str), metas,
                      skipped)


def _save(path: Path, e: Embeddings) -> None:
    from gpic_lab.fsio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, keys=e.keys, shards=e.shards, vectors=e.vectors, width=e.width, height=e.height,
                 sha256=e.sha256, meta=np.array(json.dumps(e.meta)), skipped=np.array(json.dumps(e.skipped)))


def _load(path: Path) -> Embeddings:
    with np.load(path, allow_pickle=False) as z:
        return Embeddings(z["keys"], z["shards"], z["vectors"], z["width"], z["height"], z["sha256"],
                          json.loads(str(z["meta"])), json.loads(str(z["skipped"])) if "skipped" in z else [])


def _cached_vectors(path: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z["vectors"]


def embed_shards(shards: Iterable[str | os.PathLike[str]], encoder: Encoder, cache_dir: str | os.PathLike[str] | None = None,
                 progress: bool | str = False, load_vectors: bool = True) -> tuple[Embeddings, dict[str, int]]:
    """Embeddings of all shards (files, directories, brace ranges, globs or URLs; cached per shard when cache_dir is
    set).

    With ``load_vectors=False`` (needs cache_dir) the vectors stay in the cache files and ``Embeddings.chunks()``
    streams them shard by shard, so only keys, sizes and licenses are held for the whole run (the vectors of a shard
    that cannot be cached stay in memory). ``progress``: a bar
    over shards with rate and ETA (``auto``/``on``/``off`` or a bool, see ``gpic_lab.progress``).
    Returns (embeddings, {cache_hits, cache_misses})."""
    from gpic_lab.progress import bar, log
    from gpic_lab.shards.reader import list_shards

    shard_list = [str(p) for p in list_shards(list(shards))]
    parts, stats, images = [], {"cache_hits": 0, "cache_misses": 0}, 0
    with bar(len(shard_list), f"embed {encoder.name}", "shard", progress) as pbar:
        for shard in shard_list:
            path = cache_path(shard, encoder, cache_dir) if cache_dir else None
            if path is not None and path.is_file():
                part = _load(path)
                stats["cache_hits"] += 1
            else:
                part = embed_shard(shard, encoder)
                stats["cache_misses"] += 1
                if path is not None:
                    _save(path, part)
            if path is not None and not load_vectors:
                part.vectors, part.sources = np.zeros((0, part.vectors.shape[1]), np.float32), [str(path)]
            parts.append(part)
            images += len(part)
            pbar.update(1)
            pbar.set_postfix(images=images, cached=stats["cache_hits"], refresh=False)
    log(__name__).info("embedded %d images of %d shards with %s (%d from the cache)", images, len(shard_list),
                       encoder.name, stats["cache_hits"])
    return Embeddings.concat(parts), stats

