"""The only code that writes GPIC tars: deterministic members (given order, fixed mtime/uid/gid/mode, ustar
headers), JSON then image per sample, written to a temp file and renamed. Re-writing a shard read back with
gpic_lab.shards.reader gives byte-identical bytes, because raw JSON bytes are kept as they were.

The bytes are exactly those of Python's ``tarfile`` in USTAR format: each header is tarfile's own header for these
fields with the name, size and checksum filled in (tarfile itself writes a header whose name is not ASCII or longer
than 100 bytes), then the data padded to 512 bytes, two zero blocks and zeros up to a multiple of 10240 bytes.

The tar stream is assembled in one reused buffer per thread (image bytes given by location are read straight into
it with ``preadv``: no bytes object per member), then hashed and written a chunk at a time with ``os.write``: the
sha256 of the shard comes from the bytes as they are written (no second read)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.fsio import atomic_path

MTIME = 0
MODE = 0o644
CHUNK = 1 << 19  # bytes assembled in the buffer before one hash update and one write


@dataclass(frozen=True, slots=True)
class Located:
    """Image bytes to copy from an open file: ``size`` bytes at ``offset`` of ``fd``; ``where`` names the member in
    the error a short read gives (the source changed since it was scanned)."""

    fd: int
    offset: int
    size: int
    where: str


@functools.cache
def _json_encoder() -> json.JSONEncoder:
    """The encoder of `encode_meta`, built once (``json.dumps`` with these options builds one per call)."""
    return json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def encode_meta(meta: dict[str, Any]) -> bytes:
    """Canonical JSON bytes for a record: GPIC field order as given, UTF-8, compact separators."""
    return _json_encoder().encode(meta).encode("utf-8")


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
    (key, meta_dict_or_json_bytes, image, image_ext) whose image is bytes or a `Located` range of an open file.
    """
    count, seen = 0, set()
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        out = _Stream(fd)
        try:
            for sample in samples:
                key, meta, image, ext = _unpack(sample)
                if key in seen:
                    raise ValueError(f"{path}: sample {key} given twice (a shard holds each key once)")
                seen.add(key)
                raw = meta if isinstance(meta, bytes) else encode_meta(meta)
                size = image.size if isinstance(image, Located) else len(image)
                out.put(header(f"{key}.json", len(raw)))
                out.put(raw)
                out.put(_ZEROS[:-len(raw) % BLOCK])
                out.put(header(f"{key}.{ext}", size))
                if isinstance(image, Located):
                    out.copy(image)
                else:
                    out.put(image)
                out.put(_ZEROS[:-size % BLOCK])
                count += 1
            out.put(bytes(2 * BLOCK + -(out.size + out.fill + 2 * BLOCK) % RECORD))
            out.flush()
        finally:
            out.release()
            os.close(fd)
    return {"samples": count, "bytes": out.size, "sha256": out.digest.hexdigest()}


class _Stream:
    """A file descriptor written through a reused buffer, hashed as it is written."""

    def __init__(self, fd: int) -> None:
        self.fd, self.fill, self.size = fd, 0, 0
        self.digest = hashlib.sha256()
        self.buf = _take_buffer()
        self.view = memoryview(self.buf)

    def put(self, data: Any) -> None:
        """Append bytes (anything with the buffer protocol)."""
        n = len(data)
        if self.fill + n > CHUNK:
            self.flush()
            if n > CHUNK:
                self._emit(memoryview(data))
                return
        self.view[self.fill:self.fill + n] = data
        self.fill += n

    def copy(self, image: Located) -> None:
        """Append ``image.size`` bytes read from ``image.fd`` at ``image.offset`` straight into the buffer."""
        left, offset = image.size, image.offset
        while left:
            if self.fill == CHUNK or (self.fill + left > CHUNK and self.fill):
                self.flush()
            n = min(left, CHUNK - self.fill)
            got = os.preadv(image.fd, [self.view[self.fill:self.fill + n]], offset)
            if got != n:
                raise UsageError(f"{image.where}: short read (shard changed?)")
            self.fill += n
            offset += n
            left -= n

    def flush(self) -> None:
        if self.fill:
            self._emit(self.view[:self.fill])
            self.fill = 0

    def _emit(self, data: memoryview) -> None:
        self.digest.update(data)
        done = 0
        while done < len(data):
            done += os.write(self.fd, data[done:])
        self.size += len(data)

    def release(self) -> None:
        _give_buffer(self.buf)  # views of it may outlive this (a traceback): the buffer is never resized


_buffers = threading.local()


def _take_buffer() -> bytearray:
    """This thread's spare assembly buffer (kept between shards: its pages are not faulted in again per shard)."""
    free = getattr(_buffers, "free", None)
    return free.pop() if free else bytearray(CHUNK)


def _give_buffer(buf: bytearray) -> None:
    if not hasattr(_buffers, "free"):
        _buffers.free = []
    _buffers.free.append(buf)


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


def _unpack(sample: Any) -> tuple[str, bytes | dict[str, Any], Any, str]:
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
