"""DINOv2 features of image streams: decode + protocol preprocessing on a thread pool, one batch ahead of
batched inference (CUDA when present). Shared by the evaluator and the reference statistics."""

from __future__ import annotations

import io
import itertools
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError

GEN_SIZE = (256, 256)


def _decode(item: tuple[Any, bytes | np.ndarray], reference: bool, check_generated: bool,
            any_generated: bool = False) -> tuple[Any, Any, tuple[str, ...]]:
    """(id, uint8 224x224x3 array, notes) or (id, 'problem-code', ()).

    ``any_generated``: a generated image of any size, mode or format (PNG, JPEG) goes through the protocol's own
    GPIC-256 step (center crop + Pillow bicubic 256; a 256x256 RGB image is left as it is) before the 224 resize;
    notes say what was done (``resized_to_256``, ``converted_to_rgb``, ``jpeg``)."""
    from PIL import Image, UnidentifiedImageError

    from gpic_lab.evaluation.preprocess import reference_256, resize_224

    ident, data = item
    try:
        if isinstance(data, np.ndarray):
            img = Image.fromarray(data)
        else:
            img = Image.open(io.BytesIO(data))
        if check_generated and img.size != GEN_SIZE:
            return ident, "bad_size", ()
        if check_generated and img.mode != "RGB":
            return ident, "not_rgb", ()
        if check_generated and not isinstance(data, np.ndarray) and img.format != "PNG":
            return ident, "not_png", ()  # e.g. a JPEG named .png: lossy artefacts change the features
        notes: tuple[str, ...] = ()
        if any_generated:
            notes = tuple(n for n, hit in (("resized_to_256", img.size != GEN_SIZE),
                                           ("converted_to_rgb", img.mode != "RGB"),
                                           ("jpeg", getattr(img, "format", None) == "JPEG")) if hit)
        return ident, resize_224(reference_256(img) if reference or any_generated else img), notes
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return ident, "undecodable", ()


def stream_features(items: Iterable[tuple[Any, bytes | np.ndarray]], model: Any, reference: bool,
                    batch_size: int = 64, threads: int | None = None, skipped: Counter[str] | None = None,
                    check_generated: bool = False, examples: dict[str, Any] | None = None,
                    progress: bool | str = False, desc: str = "features", any_generated: bool = False,
                    noted: Counter[str] | None = None) -> Iterator[tuple[list[Any], np.ndarray]]:
    """Yield (ids, float64 features [B, D]) per batch; problems are counted in `skipped` by code (first id per code
    in `examples`), never silent. `progress`: images done, rate on stderr (see ``gpic_lab.progress``).
    ``any_generated``: generated images of any size/format get the GPIC-256 step, counted in ``noted`` (see
    ``_decode``)."""
    import torch

    from gpic_lab.evaluation.preprocess import normalize_torch
    from gpic_lab.models.dinov2 import features_from_tensor

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    skipped = skipped if skipped is not None else Counter()
    param = next(model.parameters())
    workers = threads or min(16, os.cpu_count() or 1)
    it = iter(items)

    def chunk() -> list[Any]:
        return list(itertools.islice(it, batch_size))

    def prepare(batch: list[Any]) -> tuple[list[Any], Any]:
        done = list(pool.map(lambda x: _decode(x, reference, check_generated, any_generated), batch))
        good = [(i, a) for i, a, _ in done if not isinstance(a, str)]
        for i, a, notes in done:
            if noted is not None:
                noted.update(notes)
            if isinstance(a, str):
                skipped[a] += 1
                if examples is not None:
                    examples.setdefault(a, i)
        if not good:
            return [], None
        arrays = [a for _, a in good]  # uint8: 4x fewer bytes to move than float32
        stacked = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.uint8, pin_memory=param.is_cuda)
        np.stack(arrays, out=stacked.numpy())  # straight into pinned memory on CUDA: no second copy
        return [i for i, _ in good], stacked

    from gpic_lab.progress import bar

    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead, bar(None, desc, "img", progress) as pbar:
        batch = chunk()
        fut: Future[Any] | None = ahead.submit(prepare, batch) if batch else None
        while fut is not None:
            ids, arr = fut.result()
            size, batch = len(batch), chunk()  # read the next batch's bytes while its predecessor runs on the model
            fut = ahead.submit(prepare, batch) if batch else None
            if arr is not None:
                x = normalize_torch(arr.to(param.device, non_blocking=True), param.dtype)
                yield ids, features_from_tensor(model, x)
            pbar.update(size)


def shard_features(shards: list[str], model: Any, batch_size: int = 64, threads: int | None = None,
                   limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Keys and float64 protocol features (GPIC-256 -> 224) of real images in shards; undecodable ones raise."""
    from gpic_lab.shards.reader import iter_samples, list_shards

    skipped: Counter[str] = Counter()
    pairs = ((s.key, s.image) for s in itertools.islice(iter_samples(list_shards(shards)), limit))
    keys, chunks = [], []
    for ids, f in stream_features(pairs, model, reference=True, batch_size=batch_size, threads=threads,
                                  skipped=skipped):
        keys += ids
        chunks.append(f)
    if skipped:
        raise GpicError(f"eval: undecodable images in {shards}: {format_counts(skipped)}")
    return keys, np.concatenate(chunks) if chunks else np.empty((0, 0))


def format_counts(c: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items()))
