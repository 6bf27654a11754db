"""Feeding the captioner: shard reading (raise or skip-and-count corrupt samples), decode/resize in background
threads, jobs sorted by image size."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gpic_lab.caption.levels import check_levels
from gpic_lab.core.images import to_rgb
from gpic_lab.errors import GpicError, UsageError


def read_shard(shard: str, on_corrupt: str = "raise", skipped: Counter[str] | None = None) -> Iterator[Any]:
    """Samples of one shard. ``on_corrupt="raise"``: the first problem is a ShardError naming shard, member and
    code; ``"skip"``: problems are counted by code in ``skipped`` (and printed to stderr) and reading goes on."""
    from gpic_lab.shards.reader import Problem, iter_entries, iter_samples

    if on_corrupt == "raise":
        yield from iter_samples([shard])
        return
    if on_corrupt != "skip":
        raise UsageError(f"--on-corrupt must be raise or skip, got {on_corrupt!r}")
    for entry in iter_entries(shard, images=True):
        if isinstance(entry, Problem):
            if skipped is not None:
                skipped[entry.code] += 1
            print(f"caption: skipped {entry.line()}", file=sys.stderr)
            continue
        yield entry


def count_samples(shards: Iterable[str]) -> int:
    """Samples in the shards, counting past problems (for the progress bar)."""
    from gpic_lab.shards.reader import iter_entries

    return sum(1 for shard in shards for e in iter_entries(shard, images=False) if hasattr(e, "meta"))


def prepare_image(data: bytes, max_pixels: int | None) -> Any:
    """Decode (JPEG draft mode when far above max_pixels), convert to RGB and bound the pixel count."""
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(data))
    if max_pixels and im.format == "JPEG" and im.width * im.height > 4 * max_pixels:
        scale = (max_pixels / (im.width * im.height)) ** 0.5
        im.draft("RGB", (max(1, int(im.width * scale * 2)), max(1, int(im.height * scale * 2))))
    im = to_rgb(im)
    if max_pixels and im.width * im.height > max_pixels:
        scale = (max_pixels / (im.width * im.height)) ** 0.5
        im = im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))), Image.BICUBIC)
    return im


def jobs_for(samples: Iterable[Any], levels: str, seed: int) -> list[tuple[Any, str]]:
    """(sample, level) pairs, sorted by image area so a batch holds similar sizes (less padding)."""
    from gpic_lab.caption.levels import LEVELS, caption_type_for

    check_levels(levels)
    jobs = [(s, lv) for s in samples for lv in (LEVELS if levels == "all" else (caption_type_for(s.key, seed),))]
    return sorted(jobs, key=lambda j: (_area(j[0].meta), j[0].key, j[1]))


def _area(meta: dict[str, Any]) -> int:
    """Declared pixel count for the size sort; 0 when img_width/img_height are missing or not numbers."""
    try:
        return int(meta.get("img_width") or 0) * int(meta.get("img_height") or 0)
    except (TypeError, ValueError):
        return 0


def decoded(jobs: list[tuple[Any, str]], max_pixels: int | None, workers: int, ahead: int = 32,
            on_corrupt: str = "raise", skipped: Counter[str] | None = None) -> Iterator[tuple[Any, str, Any]]:
    """(sample, level, PIL image) with decode/resize in background threads, in order, at most ``ahead`` images
    decoded ahead of the consumer (the levels of one key are adjacent in ``jobs`` and share one decode).
    An undecodable image is a GpicError, or with ``on_corrupt="skip"`` counted as ``image-decode`` and dropped."""
    from collections import deque

    keys = list(dict.fromkeys(s.key for s, _ in jobs))
    by_key = {s.key: s for s, _ in jobs}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[tuple[str, Any]] = deque()
        nxt = 0
        current: tuple[str, Any] | None = None
        for s, lv in jobs:
            while nxt < len(keys) and len(pending) < ahead:
                pending.append((keys[nxt], pool.submit(prepare_image, by_key[keys[nxt]].image, max_pixels)))
                nxt += 1
            if current is None or current[0] != s.key:
                key, fut = pending.popleft()
                current = (key, _result(fut, s, on_corrupt, skipped))
            if current[1] is not None:
                yield s, lv, current[1]




def _result(fut: Any, sample: Any, on_corrupt: str, skipped: Counter[str] | None) -> Any:
    try:
        return fut.result()
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
        if on_corrupt != "skip":
            raise GpicError(f"{sample.shard}:{sample.key}.{sample.image_ext}: image-decode: {exc}") from exc
        if skipped is not None:
            skipped["image-decode"] += 1
        print(f"caption: skipped {sample.shard}:{sample.key}.{sample.image_ext}: image-decode: {exc}", file=sys.stderr)
        return None
