"""Deep validation of GPIC shards: every member, every record, every image decoded (after a pixel-count check
that refuses decompression bombs before decoding). Problems use a fixed vocabulary of codes (`CODES`)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from gpic_lab.core.images import jpeg_check
from gpic_lab.shards.reader import Problem, Sample, iter_entries, list_shards
from gpic_lab.shards.schema import check_meta

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (≈ 89.5 MP)
CODES = {
    "truncated-tar": "the archive ends early, has a corrupt header, or lacks its end-of-archive marker",
    "unsafe-member-name": "absolute path, '..', control characters, or a link/device/fifo member",
    "unexpected-member": "anything but flat {key}.json / {key}.jpg / {key}.png regular files (e.g. directories)",
    "bad-json": "the JSON member is not UTF-8, does not parse, or is not an object",
    "schema": "a field is missing or has the wrong type or value (caption_type, split, key, caption, dims)",
    "key-mismatch": "the JSON 'key' differs from the member stem",
    "missing-image": "a JSON member without its image",
    "missing-json": "an image member without its JSON",
    "duplicate-key": "a key appears twice within a shard or across the shards given",
    "non-adjacent-pair": "a sample's two members are not consecutive (streaming loaders break on it)",
    "image-decode": "the image bytes are neither JPEG nor PNG, fail to decode, or hold truncated JPEG data",
    "format-mismatch": "PNG bytes named .jpg or JPEG bytes named .png",
    "dims-mismatch": "img_width/img_height differ from the decoded image size",
    "too-many-pixels": "width × height above --max-pixels (refused before decoding)",
}


@dataclass
class ShardReport:
    """What validating one shard found."""

    shard: str
    samples: int = 0
    problems: list[Problem] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (key, json member)


@contextlib.contextmanager
def _no_pil_bomb_guard() -> Iterator[None]:
    """We enforce our own pixel limit before decoding; silence Pillow's so it never pre-empts ours."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_image(sample: Sample, max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = True) -> list[Problem]:
    """Format, pixel-count, dimension and decode problems of one sample's image (bytes must be loaded)."""
    from PIL import Image

    member = f"{sample.key}.{sample.image_ext}"
    found = sample.sniffed_format

    def problem(code: str, message: str) -> list[Problem]:
        return [Problem(sample.shard, member, code, message, sample.key)]

    if found is None:
        return problem("image-decode", f"neither JPEG nor PNG (starts with {bytes(sample.image_head[:8])!r})")
    out = []
    if found != sample.image_ext:
        out += problem("format-mismatch", f"{'PNG' if found == 'png' else 'JPEG'} bytes named .{sample.image_ext}")
    if sample.image is None:
        return out
    with _no_pil_bomb_guard():
        try:
            with Image.open(io.BytesIO(sample.image)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    return out + problem("too-many-pixels", f"{width}x{height} = {width * height} pixels > {max_pixels} (not decoded)")
                if decode:
                    # JPEGs: libjpeg's warnings too (Pillow decodes a JPEG cut and closed again with its end marker,
                    # filling the rest with grey); one scaled decode checks every block, PIL decodes the rest
                    decoded, damage = jpeg_check(sample.image) if found == "jpg" else (False, None)
                    if damage:
                        return out + problem("image-decode", damage)
                    if not decoded:
                        img.load()
        except Exception as exc:  # noqa: BLE001 — any decoder failure is a finding, never a crash
            return out + problem("image-decode", f"{type(exc).__name__}: {exc}")
    claimed = (sample.meta.get("img_width"), sample.meta.get("img_height"))
    if all(type(v) is int for v in claimed) and claimed != (width, height):
        out += problem("dims-mismatch", f"record says {claimed[0]}x{claimed[1]}, image is {width}x{height}")
    return out


def validate_shard(path: str, max_pixels: int = DEFAULT_MAX_PIXELS, require_caption: bool = True) -> ShardReport:
    """Validate one shard completely, continuing past every problem."""
    report = ShardReport(path)
    for entry in iter_entries(path, images=True):
        if isinstance(entry, Problem):
            report.problems.append(entry)
            continue
        report.samples += 1
        json_member = f"{entry.key}.json"
        report.problems += [Problem(path, json_member, "schema", msg, entry.key)
                            for msg in check_meta(entry.meta, require_caption)]
        report.problems += check_image(entry, max_pixels)
        report.keys.append((entry.key, json_member))
    return report


def _run(args: tuple[str, int, bool]) -> ShardReport:
    return validate_shard(*args)


def iter_reports(shards: list[str], max_pixels: int, require_caption: bool, workers: int | None) -> Iterable[ShardReport]:
    """Shard reports in shard order, computed in a process pool when there are several shards."""
    jobs = [(s, max_pixels, require_caption) for s in shards]
    workers = workers or min(len(shards), os.cpu_count() or 1)
    if workers <= 1 or len(shards) == 1:
        yield from map(_run, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_run, jobs)


def validate(paths: Iterable[str | os.PathLike[str]], max_pixels: int = DEFAULT_MAX_PIXELS, workers: int | None = None,
             require_caption: bool = True, progress: bool = False) -> tuple[list[Problem], int]:
    """All problems of the given shards/directories (in shard order) and the number of valid-looking samples."""
    shards = list_shards(paths)
    reports = iter_reports(shards, max_pixels, require_caption, workers)
    if progress:
        from tqdm import tqdm

        reports = tqdm(reports, total=len(shards), unit="shard", file=sys.stderr, desc="validate")
    problems, samples, first_seen = [], 0, {}
    for report in reports:
        problems += report.problems
        samples += report.samples
        for key, member in report.keys:
            if key in first_seen and first_seen[key] != report.shard:
                problems.append(Problem(report.shard, member, "duplicate-key", f"key also in {first_seen[key]}", key))
            first_seen.setdefault(key, report.shard)
    return problems, samples
