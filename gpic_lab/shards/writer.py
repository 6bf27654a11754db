"""The only code that writes GPIC tars: deterministic members (given order, fixed mtime/uid/gid/mode, ustar
headers), JSON then image per sample, written to a temp file and renamed. Re-writing a shard read back with
gpic_lab.shards.reader gives byte-identical bytes, because raw JSON bytes are kept as they were.

The bytes are exactly those of Python's ``tarfile`` in USTAR format: each header is tarfile's own header for these
fields with the name, size and checksum filled in (tarfile itself writes a header whose name is not ASCII or longer
than 100 bytes), then the data padded to 512 bytes, two zero blocks and zeros up to a multiple of 10240 bytes. The
sha256 of the shard is computed from the bytes as they are written (no second read)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tarfile
from collections.abc import Iterable
from typing import Any

from gpic_lab.fsio import atomic_path

MTIME = 0
MODE = 0o644


def encode_meta(meta: dict[str, Any]) -> bytes:
    """Canonical JSON bytes for a record: GPIC field order as given, UTF-8, compact separators."""
    return json.dumps(meta, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path: str | os.PathLike[str], samples: Iterable[Any]) -> dict[str, Any]:
    """Write samples to `path` atomically; returns {'samples': n, 'bytes': size, 'sha256': hex digest}.

    Each sample is a gpic_lab.shards.reader.Sample (its raw json_bytes are kept) or a tuple
    (key, meta_dict_or_json_bytes, image_bytes, image_ext).
    """
    count, seen, size = 0, set(), 0
    digest = hashlib.sha256()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        def put(data: bytes) -> None:
            nonlocal size
            fh.write(data)
            digest.update(data)
            size += len(data)

        for sample in samples:
            key, meta, image, ext = _unpack(sample)
            if key in seen:
                raise ValueError(f"{path}: sample {key} given twice (a shard holds each key once)")
            seen.add(key)
            raw = meta if isinstance(meta, bytes) else encode_meta(meta)
            put(header(f"{key}.json", len(raw)) + raw + _ZEROS[:-len(raw) % BLOCK] + header(f"{key}.{ext}", len(image)))
            put(image)
            put(_ZEROS[:-len(image) % BLOCK])
            count += 1
        end = size + 2 * BLOCK
        put(bytes(2 * BLOCK + -end % RECORD))
    return {"samples": count, "bytes": size, "sha256": digest.hexdigest()}


BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_ZEROS = bytes(BLOCK)
_MAX_SIZE = 8**11 - 1  # the largest size an 11-digit octal ustar size field holds


@functools.cache
def _template() -> tuple[bytes, int]:
    """tarfile's USTAR header for a member of these fields with an empty name and size 0 (checksum field as
    spaces), and the byte sum of everything but the name and size fields."""
    head = bytearray(_info("", 0).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
    head[148:156] = b" " * 8
    return bytes(head), sum(head) - sum(head[0:100]) - sum(head[124:136])


def header(name: str, size: int) -> bytes:
    """The 512-byte ustar header tarfile writes for member `name` of `size` bytes with our fixed fields."""
    raw = name.encode("ascii") if name.isascii() else b""
    if not raw or len(raw) > 100 or size > _MAX_SIZE:  # long or non-ASCII names, huge sizes: tarfile itself
        return _info(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    template, rest = _template()
    size_field = b"%011o\0" % size
    checksum = rest + sum(raw) + sum(size_field)
    return b"".join((raw, _ZEROS[:100 - len(raw)], template[100:124], size_field, template[136:148],
                     b"%06o\0" % checksum, template[155:]))


def _unpack(sample: Any) -> tuple[str, bytes | dict[str, Any], bytes, str]:
    if isinstance(sample, tuple):
        key, meta, image, ext = sample
    else:
        key, meta, image, ext = sample.key, sample.json_bytes, sample.image, sample.image_ext
    if not isinstance(key, str) or not key or not key.isprintable() or any(c in key for c in "/\\") or key.startswith("."):
        raise ValueError(f"sample key {key!r} cannot be a flat tar member name")
    if image is None:
        raise ValueError(f"sample {key}: image bytes are required to write a shard")
    if ext not in ("jpg", "png"):
        raise ValueError(f"sample {key}: image extension must be jpg or png, not {ext!r}")
    return key, meta, image, ext
