"""A small, strict tar header scanner: reads 512-byte headers, returns member locations, and reads only the
member data the caller asks for (seeking past the rest). Nothing is ever extracted to disk and no member
name is trusted. Structural damage raises ShardError with code `truncated-tar`, including a zero block followed by
anything but zeros: only zeros may follow the end-of-archive marker, so a zeroed header never ends a shard early."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from gpic_lab.errors import ShardError

BLOCK = 512
ZERO_BLOCK = b"\0" * BLOCK
TRAILER_CHUNK = 1 << 16  # what follows the first zero block is read in these steps (normally 1-19 zero blocks)
_KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"5": "dir", b"1": "hardlink", b"2": "symlink",
          b"3": "device", b"4": "device", b"6": "fifo"}


@dataclass(frozen=True, slots=True)
class TarMember:
    """One archive member: where its header and data start, how big it is, and what was read of it."""

    name: str
    kind: str  # file | dir | symlink | hardlink | device | fifo | other
    header_offset: int
    offset: int  # offset of the data
    size: int
    data: bytes | None  # the full data when the caller wanted it
    head: bytes  # the first bytes of the data (for format sniffing)


def _octal(field: bytes, shard: str, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ShardError(shard, "-", "truncated-tar", f"corrupt tar header ({what} field {text!r})") from None


_EVEN_BYTES = int.from_bytes(b"\xff\x00" * (BLOCK // 2), "little")


def byte_sum(block: bytes) -> int:
    """Sum of the bytes of a 512-byte block, about twice as fast as sum(): the even and the odd bytes, read as
    base-65536 digits of one integer, each sum to at most 256 * 255 < 65535, so a modulo 65535 recovers them."""
    x = int.from_bytes(block, "little")
    return (x & _EVEN_BYTES) % 65535 + ((x >> 8) & _EVEN_BYTES) % 65535


def _checksum_ok(header: bytes) -> bool:
    stored = header[148:156].split(b"\0", 1)[0].strip(b" \0")
    try:
        expected = int(stored, 8)
    except ValueError:
        return False
    unsigned = byte_sum(header) - sum(header[148:156]) + 8 * 32  # the checksum field counts as spaces
    if expected == unsigned:
        return True
    blanked = header[:148] + b" " * 8 + header[156:]
    return expected == sum(b - 256 if b > 127 else b for b in blanked)  # old writers used signed bytes


def _pax_records(data: bytes, shard: str) -> dict[str, str]:
    """`<length> <key>=<value>\\n` records; a malformed one is a corrupt header (never a crash or a hang)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos]:
        space = data.find(b" ", pos)
        digits = data[pos:space] if space > pos else b""
        length = int(digits) if digits.isdigit() else 0
        if length <= space - pos or pos + length > len(data) or data[pos + length - 1:pos + length] != b"\n":
            raise ShardError(shard, "-", "truncated-tar", f"corrupt pax extended header record at byte {pos}")
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


class _Reader:
    """Sequential reader over a binary file object. Local files use positional reads (os.pread: one syscall per
    header, no buffer refilled just to be skipped); other seekable streams seek; pipes read-and-discard."""

    def __init__(self, fh: BinaryIO, size: int | None) -> None:
        self.fh, self.size = fh, size
        self.seekable = size is not None
        try:
            self.fd: int | None = fh.fileno() if self.seekable and hasattr(os, "pread") else None
            self.pos = fh.tell() if self.seekable else 0
        except (OSError, AttributeError, io.UnsupportedOperation):
            self.fd, self.pos = None, 0
        self.base = self.pos

    def read(self, n: int) -> bytes:
        if self.fd is not None:  # positional read: safe even if the file shrinks under us (no mmap SIGBUS)
            data = os.pread(self.fd, n, self.pos)
            self.pos += len(data)
            return data
        chunks, want = [], n
        while want > 0:
            chunk = self.fh.read(min(want, 1 << 24))  # bounded: a bogus header size never allocates it
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        data = b"".join(chunks)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> bool:
        """Skip n bytes; False when the stream ends first."""
        if self.seekable:
            if self.fd is None:
                self.fh.seek(n, io.SEEK_CUR)
            self.pos += n
            return self.pos - self.base <= self.size  # type: ignore[operator]
        while n > 0:
            chunk = self.read(min(n, 1 << 20))
            if not chunk:
                return False
            n -= len(chunk)
        return True


def _stream_size(fh: BinaryIO) -> int | None:
    try:
        if not fh.seekable():
            return None
        here = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        fh.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None


def iter_members(
    fh: BinaryIO,
    shard: str,
    want: Callable[[str], bool] = lambda name: True,
    head: int = 0,
    max_data: Callable[[str], int | None] | None = None,
) -> Iterator[TarMember]:
    """Yield every member of the tar stream `fh`; read the data of regular files for which want(name) is True.

    `max_data(name)` bounds what is read of a wanted member: a larger one gets ``data=None`` (only its head is read),
    so a hostile member size never becomes an allocation.

    Raises ShardError(code='truncated-tar') when the archive ends early, a header is corrupt, or the
    end-of-archive marker is missing.
    """
    reader = _Reader(fh, _stream_size(fh))
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        header_offset = reader.pos
        header = reader.read(BLOCK)
        if len(header) == 0:
            raise ShardError(shard, "-", "truncated-tar", f"archive ends at byte {header_offset} without an end-of-archive marker")
        if len(header) < BLOCK:
            raise ShardError(shard, "-", "truncated-tar", f"partial header at byte {header_offset}")
        if header == ZERO_BLOCK:
            _end_of_archive(reader, shard, header_offset)
            return
        if not _checksum_ok(header):
            raise ShardError(shard, "-", "truncated-tar", f"bad header checksum at byte {header_offset}")
        size = _octal(header[124:136], shard, "size")
        typeflag = header[156:157]
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if typeflag in (b"L", b"x", b"g", b"K"):
            if size < 0 or (reader.size is not None and header_offset + BLOCK + size > reader.base + reader.size):
                raise ShardError(shard, "-", "truncated-tar", f"archive ends inside an extended header at byte {header_offset}")
            meta = reader.read(padded)
            if len(meta) < padded:
                raise ShardError(shard, "-", "truncated-tar", f"archive ends inside an extended header at byte {header_offset}")
            if typeflag == b"L":
                long_name = meta[:size].split(b"\0", 1)[0].decode("utf-8", "replace")
            elif typeflag == b"x":
                pax = _pax_records(meta[:size], shard)
            continue
        name = _member_name(header, long_name, pax)
        if "size" in pax:
            if not (pax["size"].isascii() and pax["size"].isdigit()):  # '²'.isdigit() is true, int('²') fails
                raise ShardError(shard, "-", "truncated-tar", f"corrupt pax size {pax['size']!r} at byte {header_offset}")
            size = int(pax["size"])
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if size < 0:
            raise ShardError(shard, "-", "truncated-tar", f"corrupt tar header (negative size) at byte {header_offset}")
        long_name, pax = None, {}
        kind = _KINDS.get(typeflag, "other")
        offset = reader.pos
        if reader.size is not None and offset + size > reader.base + reader.size:  # never allocate a bogus size
            raise ShardError(shard, name, "truncated-tar", f"archive ends inside member data ({size} bytes declared)")
        member_head, data = b"", None
        limit = max_data(name) if max_data is not None else None
        if kind == "file" and size > 0 and want(name) and (limit is None or size <= limit):
            data = reader.read(size)
            if len(data) < size or not reader.skip(padded - size):
                raise ShardError(shard, name, "truncated-tar", f"archive ends inside member data (read {len(data)} of {size} bytes)")
            member_head = data[:head]
        elif kind == "file" and head and size > 0:
            member_head = reader.read(min(head, size))
            if len(member_head) < min(head, size) or not reader.skip(padded - len(member_head)):
                raise ShardError(shard, name, "truncated-tar", "archive ends inside member data")
        elif not reader.skip(padded):
            raise ShardError(shard, name, "truncated-tar", "archive ends inside member data")
        if data is None and kind == "file" and size == 0 and want(name):
            data = b""
        yield TarMember(name, kind, header_offset, offset, size, data, member_head)


def _end_of_archive(reader: _Reader, shard: str, offset: int) -> None:
    """After a zero block: the archive may end there (some writers omit the second block) or go on with zero
    padding only. A zero block followed by data is a zeroed header (or data appended after the end-of-archive
    marker), so the samples behind it would be lost silently: ShardError 'truncated-tar'."""
    while True:
        chunk = reader.read(TRAILER_CHUNK)
        if not chunk:
            return
        if chunk.count(0) != len(chunk):
            at = reader.pos - len(chunk) + next(i for i, b in enumerate(chunk) if b)
            raise ShardError(shard, "-", "truncated-tar", f"zero block at byte {offset} followed by data at byte {at} "
                                                          "(a zeroed header, or data after the end-of-archive marker)")


def _member_name(header: bytes, long_name: str | None, pax: dict[str, str]) -> str:
    if "path" in pax:
        return pax["path"]
    if long_name is not None:
        return long_name
    name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    if header[257:262] == b"ustar":
        prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        if prefix:
            name = f"{prefix}/{name}"
    return name


def unsafe_reason(member: TarMember) -> str | None:
    """Why a member's name or type is unsafe to materialise (absolute, '..', links, devices), or None."""
    name = member.name
    if member.kind in ("symlink", "hardlink", "device", "fifo"):
        return f"{member.kind} members are not allowed"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute member name"
    if ".." in name and ".." in name.replace("\\", "/").split("/"):
        return "member name contains '..'"
    if not name.isprintable():
        return "member name contains control characters"
    return None
