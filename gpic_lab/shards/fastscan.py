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
import json
import os
from typing import Any, Literal

from gpic_lab.shards.reader import HEAD_BYTES, MAGIC, Sample, _reject_constant
from gpic_lab.shards.schema import MAX_JSON_BYTES
from gpic_lab.shards.tiers import NESTED
from gpic_lab.shards.ustar import headers_ok

BLOCK = 512
READ = 4096  # header + typical JSON (~400-1500 B) + next header + image head, in one pread
_ZERO = b"\0" * BLOCK
_JPEG, _PNG = MAGIC["jpg"], MAGIC["png"]
_SPLIT_INDEX = {tiers: i for i, tiers in enumerate(NESTED)}
COLUMNS = ("key", "license", "license_url", "attribution", "img_width", "img_height", "caption_type", "caption",
           "split", "retrieved_at", "image_format", "image_bytes", "json_offset", "json_size", "image_offset",
           "image_size")
_PARSED = ("key", "license", "license_url", "attribution", "img_width", "img_height", "caption_type", "caption",
           "split", "retrieved_at", "image_format", "start", "json_size", "image_size")  # what the loop collects


@functools.cache
def _decoder() -> Any:
    """A msgspec decoder enforcing the same rules as `schema.check_meta` (strict types, positive sizes, caption
    type, tiers); any violation makes the fast path give up. Two rules are checked by the scan loop instead, where
    they cost less than msgspec's regex patterns: the key must equal the member name (a 64-hex stem, checked by the
    header match) and the caption must not be blank (the same `str.strip` test as check_meta)."""
    from typing import Annotated

    import msgspec

    from gpic_lab.shards.schema import INT64_MAX, MAX_STRING_CHARS

    positive = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
    text = Annotated[str, msgspec.Meta(max_length=MAX_STRING_CHARS)]
    record = msgspec.defstruct("GpicRecord", [
        ("retrieved_at", text), ("license", text), ("license_url", text), ("attribution", text), ("key", text),
        ("img_width", positive), ("img_height", positive), ("split", tuple[Literal["nano", "lite", "full"], ...]),
        ("caption_type", Literal["tag", "short", "medium", "long"]), ("caption", text)],
        forbid_unknown_fields=True, gc=False)  # other fields are checked by the general scanner (depth, sizes, surrogates)
    # msgspec raises UnicodeDecodeError (not DecodeError) for a string that is not valid UTF-8 (Latin-1 JSON)
    return msgspec.json.Decoder(record), msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError


def scan_local(path: str, raw: bool = False) -> dict[str, list[Any]] | None:
    """Columns of a clean local shard (see COLUMNS; ``split`` as indices into `tiers.NESTED`), or None if anything
    deviates from the canonical layout. With ``raw`` also ``json_bytes`` and ``image_head`` (the first HEAD_BYTES
    of each image)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _scan_loop(fd, os.fstat(fd).st_size, raw)
    finally:
        os.close(fd)


@functools.cache
def _json_decoder() -> json.JSONDecoder:
    """The reader's JSON rules (`json.loads` rejecting NaN and Infinity), built once instead of per record."""
    return json.JSONDecoder(parse_constant=_reject_constant)


@functools.cache
def _dict_decoder() -> Any:
    """msgspec's JSON decoder to plain dicts (~3x faster than `json`). On a record the scan accepted (the ten GPIC
    fields as strings, positive 64-bit integers and a list of tier names, valid UTF-8, no other field) it gives the
    same dict, key order included, as the reader's `json.loads`; anything it refuses goes to `json` instead."""
    import msgspec

    return msgspec.json.Decoder().decode, msgspec.MsgspecError


def samples_local(path: str) -> list[Sample] | None:
    """The samples of a clean local shard without their image bytes, as `reader.iter_samples(path, images=False)`
    gives them (the same records, parsed by the same JSON rules), or None when the fast path refuses the shard."""
    return samples_from_scan(path, scan_local(path, raw=True))


def scan_raw(path: str) -> dict[str, list[Any]] | None:
    """`scan_local(path, raw=True)`, a task a worker runs: its columns of str, int and bytes pickle ~10x faster
    than the `Sample` objects `samples_from_scan` makes of them, so the parent builds those."""
    return scan_local(path, raw=True)


def samples_from_scan(path: str, cols: dict[str, list[Any]] | None) -> list[Sample] | None:
    """The samples of ``path`` from its `scan_raw` columns (None: the fast path refused the shard)."""
    if cols is None:
        return None
    out = []
    for key, raw, ext, j_off, j_size, i_off, i_size, head in zip(
            cols["key"], cols["json_bytes"], cols["image_format"], cols["json_offset"], cols["json_size"],
            cols["image_offset"], cols["image_size"], cols["image_head"], strict=True):
        out.append(Sample(key, path, decode_record(raw), raw, ext, None, j_off, j_size, i_off, i_size, head))
    return out


def decode_record(raw: bytes) -> dict[str, Any]:
    """A record's JSON bytes as the fast scan parses them (msgspec, or the reader's `json` rules for what msgspec
    refuses). Pack's workers decode the records they write with it, so a record travels to them as its bytes."""
    decode, refused = _dict_decoder()
    try:
        return decode(raw)
    except (refused, UnicodeDecodeError):
        return _json_decoder().decode(raw.decode("utf-8"))


def _scan_loop(fd: int, total: int, raw: bool = False) -> dict[str, list[Any]] | None:
    """The scan loop: one positional read per sample into a reused buffer (a fresh 4 KB bytes object per read cost
    as much as the read), the two headers' sizes and names parsed by slicing, every header's remaining fields
    checked in batches by `ustar.headers_ok`. Rows go straight into column lists of str and int, which the cyclic
    garbage collector does not track, so the scan triggers no collections and runs the same with it on or off."""
    decoder, *exc = _decoder()
    decode, errors, split_index, preadv = decoder.decode, tuple(exc), _SPLIT_INDEX, os.preadv
    cols: dict[str, list[Any]] = {name: [] for name in _PARSED}
    keys, licenses, urls, attributions, widths, heights, types, captions, splits, retrieved, formats, starts, \
        json_sizes, image_sizes = cols.values()
    jsons: list[bytes] = []
    image_heads: list[bytes] = []
    heads = bytearray()
    buf = bytearray(READ)
    bufs, pos = [buf], 0
    while True:
        got = preadv(fd, bufs, pos)
        if got < BLOCK:
            return None
        if buf.startswith(_ZERO):
            if pos + BLOCK > total or not headers_ok(heads) or not _zeros_to_end(fd, pos, total) \
                    or len(set(keys)) != len(keys):  # distinct keys (each key equals its members' names)
                return None
            return _columns(cols, jsons, image_heads) if raw else _columns(cols)
        try:  # digits and terminators are checked with the rest of the header by headers_ok
            jsize = int(buf[124:135], 8)
        except ValueError:
            return None
        if not buf.startswith(b".json", 64) or not 0 <= jsize <= MAX_JSON_BYTES:
            return None
        ihead_at = BLOCK + (jsize + BLOCK - 1) // BLOCK * BLOCK
        need = ihead_at + BLOCK + HEAD_BYTES
        if got < need:
            if pos + ihead_at + BLOCK > total:  # a bogus size: never allocate it
                return None
            if need > len(buf):
                buf = bytearray(need)
                bufs = [buf]
                got = preadv(fd, bufs, pos)
            if got < ihead_at + BLOCK:
                return None
        if buf.startswith(b".jpg\0", ihead_at + 64):
            ext, magic = "jpg", _JPEG
        elif buf.startswith(b".png\0", ihead_at + 64):
            ext, magic = "png", _PNG
        else:
            return None
        try:
            isize = int(buf[ihead_at + 124:ihead_at + 135], 8)
        except ValueError:
            return None
        stem = buf[0:64]
        if isize < 0 or buf[ihead_at:ihead_at + 64] != stem:
            return None
        image_at = ihead_at + BLOCK
        end = pos + image_at + (isize + BLOCK - 1) // BLOCK * BLOCK
        if end > total or not buf.startswith(magic, image_at, got):
            return None
        heads += buf[:BLOCK]
        heads += buf[ihead_at:image_at]
        if len(heads) >= 4096 * BLOCK:  # check in batches: memory stays bounded on any shard size
            if not headers_ok(heads):
                return None
            heads = bytearray()
        try:
            meta = decode(memoryview(buf)[BLOCK:BLOCK + jsize])
        except errors:
            return None
        tiers = split_index.get(meta.split)
        if meta.key != stem.decode("latin-1") or tiers is None or not meta.caption.strip():  # nested tiers, non-blank caption
            return None
        keys.append(meta.key)
        licenses.append(meta.license)
        urls.append(meta.license_url)
        attributions.append(meta.attribution)
        widths.append(meta.img_width)
        heights.append(meta.img_height)
        types.append(meta.caption_type)
        captions.append(meta.caption)
        splits.append(tiers)
        retrieved.append(meta.retrieved_at)
        formats.append(ext)
        starts.append(pos)
        json_sizes.append(jsize)
        image_sizes.append(isize)
        if raw:
            jsons.append(bytes(buf[BLOCK:BLOCK + jsize]))
            image_heads.append(bytes(buf[image_at:image_at + min(isize, HEAD_BYTES)]))
        pos = end


def _columns(cols: dict[str, list[Any]], jsons: list[bytes] | None = None,
             image_heads: list[bytes] | None = None) -> dict[str, list[Any]]:
    """COLUMNS from the loop's lists: offsets follow from each sample's start and JSON size (ustar layout)."""
    import numpy as np

    start = np.asarray(cols.pop("start"), dtype=np.int64)
    jsize = np.asarray(cols["json_size"], dtype=np.int64)
    cols["json_offset"] = (start + BLOCK).tolist()
    cols["image_offset"] = (start + 2 * BLOCK + (jsize + BLOCK - 1) // BLOCK * BLOCK).tolist()
    cols["image_bytes"] = cols["image_size"]
    out = {name: cols[name] for name in COLUMNS}
    if jsons is not None:
        out.update(json_bytes=jsons, image_head=image_heads)
    return out


def _zeros_to_end(fd: int, pos: int, total: int) -> bool:
    """Only zeros from the end-of-archive marker to the end of the file (else a zeroed header hides samples)."""
    while pos < total:
        chunk = os.pread(fd, min(1 << 16, total - pos), pos)
        if not chunk or chunk.count(0) != len(chunk):
            return False
        pos += len(chunk)
    return True
