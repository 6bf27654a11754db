"""Fast path of the metadata scan for local shards in the exact GPIC layout.

One positional read per sample fetches the JSON member's header, its data, the image member's header and the
image's first bytes; the image data itself is never read. Every header is still checked (ustar magic, checksum,
regular file, name, size) and every record still goes through `schema.check_meta`. The fast path only accepts
the canonical layout (`<key>.json` then `<key>.jpg|png`, plain ustar names, distinct keys, sniffed format equal
to the extension, an end-of-archive marker); on anything else it returns None and the caller rescans the shard
with the general scanner, which locates and names every problem. So results are identical either way.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Literal

from gpic_lab.shards.reader import HEAD_BYTES, MAGIC
from gpic_lab.shards.schema import MAX_JSON_BYTES
from gpic_lab.shards.tiers import NESTED

BLOCK = 512
READ = 4096  # header + typical JSON (~400-1500 B) + next header + image head, in one pread
_NAME = re.compile(rb"([0-9a-f]{64})\.(json|jpg|png)")
_ZERO = b"\0" * BLOCK
_EXT = {b"jpg": "jpg", b"png": "png"}
COLUMNS = ("key", "license", "license_url", "attribution", "img_width", "img_height", "caption_type", "caption",
           "split", "retrieved_at", "image_format", "image_bytes", "json_offset", "json_size", "image_offset",
           "image_size")


@functools.cache
def _decoder() -> Any:
    """A msgspec decoder enforcing the same rules as `schema.check_meta` (strict types, key pattern, positive
    sizes, caption type, non-blank caption, tiers); any violation makes the fast path give up."""
    from typing import Annotated

    import msgspec

    from gpic_lab.shards.schema import INT64_MAX, MAX_STRING_CHARS

    key = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    positive = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
    text = Annotated[str, msgspec.Meta(max_length=MAX_STRING_CHARS)]
    caption = Annotated[str, msgspec.Meta(pattern=r"\S", max_length=MAX_STRING_CHARS)]
    record = msgspec.defstruct("GpicRecord", [
        ("retrieved_at", text), ("license", text), ("license_url", text), ("attribution", text), ("key", key),
        ("img_width", positive), ("img_height", positive), ("split", list[Literal["nano", "lite", "full"]]),
        ("caption_type", Literal["tag", "short", "medium", "long"]), ("caption", caption)],
        forbid_unknown_fields=True)  # other fields are checked by the general scanner (depth, sizes, surrogates)
    # msgspec raises UnicodeDecodeError (not DecodeError) for a string that is not valid UTF-8 (Latin-1 JSON)
    return msgspec.json.Decoder(record), msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError


# One match checks a canonical ustar regular-file header: name `<64 hex>.<ext>` NUL-padded (no prefix, no long
# name), mode/uid/gid, octal size, mtime, checksum, typeflag '0', empty link name, 'ustar' magic.
_HEADER = re.compile(rb"([0-9a-f]{64})\.(json|jpg|png)\0{31,32}.{24}([0-7]{11})[\0 ].{12}([0-7]{6,7})[\0 ][\0 ]?"
                     rb"[0\0]\0{100}ustar", re.S)


def checksums_ok(blocks: list[bytes], stored: list[int]) -> bool:
    """Verify many ustar header checksums at once (vectorised byte sums; the checksum field counts as spaces)."""
    import numpy as np

    if not blocks:
        return True
    arr = np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(len(blocks), BLOCK)
    sums = arr.sum(axis=1, dtype=np.int64) - arr[:, 148:156].sum(axis=1, dtype=np.int64) + 256
    return bool(np.array_equal(sums, np.asarray(stored, dtype=np.int64)))


def scan_local(path: str) -> dict[str, list[Any]] | None:
    """Columns of a clean local shard (see COLUMNS), or None if anything deviates from the canonical layout."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _scan_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _scan_fd(fd: int, total: int) -> dict[str, list[Any]] | None:
    """The scan loop. The cyclic garbage collector is paused meanwhile: the rows are plain acyclic data, and on a
    GPIC-sized shard (12.5k samples) repeated full collections of the growing row list cost ~20% of the scan."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan_loop(fd, total)
    finally:
        if enabled:
            gc.enable()


def _scan_loop(fd: int, total: int) -> dict[str, list[Any]] | None:
    decoder, *exc = _decoder()
    decode, errors = decoder.decode, tuple(exc)
    rows: list[tuple[Any, ...]] = []
    seen: set[bytes] = set()
    blocks: list[bytes] = []
    stored: list[int] = []
    pos = 0
    while True:
        buf = os.pread(fd, READ, pos)
        if len(buf) < BLOCK:
            return None
        if buf[:BLOCK] == _ZERO:
            if pos + BLOCK > total or not checksums_ok(blocks, stored) or not _zeros_to_end(fd, pos, total):
                return None
            columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
            return {name: list(values) for name, values in zip(COLUMNS, columns, strict=True)}
        first = _HEADER.match(buf)  # inlined _header(): this loop runs once per sample
        if first is None or buf[345] != 0 or first[2] != b"json" or first[1] in seen:
            return None
        stem, jsize = first[1], int(first[3], 8)
        if jsize > MAX_JSON_BYTES:
            return None
        ihead_at = BLOCK + (jsize + BLOCK - 1) // BLOCK * BLOCK
        need = ihead_at + BLOCK + HEAD_BYTES
        if len(buf) < need:
            if pos + ihead_at + BLOCK > total:  # a bogus size: never allocate it
                return None
            buf = os.pread(fd, need, pos)
            if len(buf) < ihead_at + BLOCK:
                return None
        second = _HEADER.match(buf, ihead_at)
        if second is None or buf[ihead_at + 345] != 0 or second[1] != stem or second[2] == b"json":
            return None
        blocks += (buf[:BLOCK], buf[ihead_at:ihead_at + BLOCK])
        stored += (int(first[4], 8), int(second[4], 8))
        if len(blocks) >= 4096:  # verify in batches: memory stays bounded on any shard size
            if not checksums_ok(blocks, stored):
                return None
            blocks, stored = [], []
        ext, isize = _EXT[second[2]], int(second[3], 8)
        image_offset = pos + ihead_at + BLOCK
        end = image_offset + (isize + BLOCK - 1) // BLOCK * BLOCK
        if end > total or not buf.startswith(MAGIC[ext], ihead_at + BLOCK):
            return None
        try:
            meta = decode(buf[BLOCK:BLOCK + jsize])
        except errors:
            return None
        split = meta.split
        if meta.key != stem.decode() or tuple(split) not in NESTED:  # as schema.check_meta: nested tier lists
            return None
        seen.add(stem)
        rows.append((meta.key, meta.license, meta.license_url, meta.attribution, meta.img_width, meta.img_height,
                     meta.caption_type, meta.caption, split, meta.retrieved_at, ext, isize, pos + BLOCK,
                     jsize, image_offset, isize))
        pos = end


def _zeros_to_end(fd: int, pos: int, total: int) -> bool:
    """Only zeros from the end-of-archive marker to the end of the file (else a zeroed header hides samples)."""
    while pos < total:
        chunk = os.pread(fd, min(1 << 16, total - pos), pos)
        if not chunk or chunk.count(0) != len(chunk):
            return False
        pos += len(chunk)
    return True
