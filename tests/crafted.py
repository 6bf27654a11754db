"""Crafted hostile inputs for the reliability tests: raw tar bytes built header by header (so any field can be
wrong), GPIC records with hostile JSON, pixel bombs, cut JPEGs, names with control characters, pickled npz files.

Every builder writes into a directory the test owns and returns the path; nothing here is a fixture, so tests
parametrize over ``SHARD_CASES`` and the commands that read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = 512


def cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr). An exception the CLI does not turn into a
    one-line error (a traceback for a user) propagates and fails the calling test."""
    from gpic_lab.commands.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def ustar(name: bytes, size: int | bytes, typeflag: bytes = b"0") -> bytes:
    """A ustar header with a valid checksum (`size` as an int, or the raw 12-byte field)."""
    h = bytearray(BLOCK)
    field = size if isinstance(size, bytes) else b"%011o\0" % size
    h[0:len(name)], h[100:108], h[124:136], h[136:148] = name, b"0000644\0", field, b"00000000000\0"
    h[156:157], h[257:265], h[148:156] = typeflag, b"ustar\x0000", b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def member(name: str | bytes, data: bytes) -> bytes:
    """Header plus data padded to whole blocks."""
    raw = name.encode() if isinstance(name, str) else name
    return ustar(raw, len(data)) + data + b"\0" * (-len(data) % BLOCK)


def pax_member(records: dict[str, str], name: str, data: bytes) -> bytes:
    """A pax extended header (records as given, lengths computed) followed by the member it describes."""
    body = b""
    for key, value in records.items():
        text = f" {key}={value}\n".encode()
        length = len(text) + 1
        while len(str(length)) + len(text) != length:
            length += 1
        body += str(length).encode() + text
    return ustar(b"pax", len(body), b"x") + body + b"\0" * (-len(body) % BLOCK) + member(name, data)


def end() -> bytes:
    """The end-of-archive marker (two zero blocks)."""
    return b"\0" * (2 * BLOCK)


def jpeg(seed: int = 0, width: int = 320, height: int = 240, quality: int = 90) -> bytes:
    """A deterministic noisy JPEG (noise keeps the entropy-coded segment long)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, np.full_like(xx, (seed * 37) % 255)], -1)
    arr = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def record(data: bytes, **over: Any) -> dict[str, Any]:
    """A valid GPIC record for image bytes `data` (fields overridden by `over`)."""
    key = hashlib.sha256(data).hexdigest()
    meta = {"retrieved_at": "2026-01-01T00:00:00Z", "license": "CC BY 2.0",
            "license_url": "https://creativecommons.org/licenses/by/2.0/",
            "attribution": "Photo by Test Author via Flickr", "key": key, "img_width": 320, "img_height": 240,
            "split": ["nano", "lite", "full"], "caption_type": "short", "caption": "A crafted test image."}
    meta.update(over)
    return meta


def pair(seed: int, raw_json: bytes | None = None, image: bytes | None = None, **over: Any) -> list[bytes]:
    """The two members of one sample; `raw_json` replaces the JSON bytes verbatim."""
    data = image if image is not None else jpeg(seed)
    meta = record(data, **over)
    raw = raw_json if raw_json is not None else json.dumps(meta, ensure_ascii=False).encode()
    return [member(f"{meta['key']}.json", raw), member(f"{meta['key']}.jpg", data)]


def write(path: Path, blocks: list[bytes], trailer: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(blocks) + (end() if trailer is None else trailer))
    return path


def good_shard(path: Path, n: int = 4, seed: int = 0) -> Path:
    return write(path, [m for i in range(n) for m in pair(seed + i)])


# ---- shard-level crafts ------------------------------------------------------------------------------------------

def zeroed_header(path: Path) -> Path:
    """Four samples; the header of the second sample's JSON member overwritten by one zero block."""
    members = [m for i in range(4) for m in pair(100 + i)]
    members[2] = b"\0" * BLOCK + members[2][BLOCK:]
    return write(path, members)


def pax_size_superscript(path: Path) -> Path:
    """A pax `size` record made of a superscript digit ('²'.isdigit() is true, int('²') fails)."""
    first = pair(200)
    return write(path, [pax_member({"size": "\u00b2"}, first[0][:100].rstrip(b"\0").decode(), b"{}"), *first])


def empty_tar(path: Path) -> Path:
    """A well-formed archive with no member (what `tarfile.open(p, "w").close()` writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 10240)
    return path


def json_case(raw_json: bytes | None = None, **over: Any) -> Callable[[Path], Path]:
    """One good sample, then one whose JSON is `raw_json` (or the record with `over`), then one good sample."""
    def build(path: Path) -> Path:
        return write(path, [*pair(300), *pair(301, raw_json=raw_json, **over), *pair(302)])
    return build


def _deep_record() -> bytes:
    meta = record(jpeg(301))
    text = json.dumps(meta)[:-1] + ', "extra": ' + "[" * 900 + "]" * 900 + "}"
    return text.encode()


def _latin1_record() -> bytes:
    return json.dumps(record(jpeg(301), caption="café crème"), ensure_ascii=False).encode("latin-1")


def _surrogate(field: str) -> bytes:
    meta = record(jpeg(301), **{field: "x"})
    return json.dumps(meta).replace(f'"{field}": "x"', f'"{field}": "bad \\ud800 text"').encode()


JSON_CASES: dict[str, Callable[[Path], Path]] = {
    "deep-nesting": json_case(_deep_record()),
    "latin-1": json_case(_latin1_record()),
    "int-2^63": json_case(img_width=2**63),
    "int-2^64": json_case(img_height=2**64 + 1),
    "surrogate-caption": json_case(_surrogate("caption")),
    "surrogate-license": json_case(_surrogate("license")),
    "surrogate-attribution": json_case(_surrogate("attribution")),
    "license-object": json_case(license={"name": "CC BY 2.0"}),
    "caption-30MB": json_case(caption="a" * (30 << 20)),
}
SHARD_CASES: dict[str, Callable[[Path], Path]] = {
    "zeroed-header": zeroed_header,
    "pax-size-superscript": pax_size_superscript,
    **JSON_CASES,
}
# the problem code each case must be counted under
EXPECTED_CODE = {"zeroed-header": "truncated-tar", "pax-size-superscript": "truncated-tar",
                 "deep-nesting": "bad-json", "latin-1": "bad-json", "int-2^63": "bad-json", "int-2^64": "bad-json",
                 "surrogate-caption": "bad-json", "surrogate-license": "bad-json",
                 "surrogate-attribution": "bad-json", "license-object": "schema", "caption-30MB": "bad-json"}


def control_name(path: Path) -> Path:
    """A good sample plus a member whose name holds a newline and a forged problem line."""
    name = "abc.json\nforged.tar:x.json: bad-json: forged line"
    return write(path, [*pair(400), member(name, b"{}")])


# ---- image crafts -------------------------------------------------------------------------------------------------

def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bomb_jpeg(width: int = 30000, height: int = 30000) -> bytes:
    """A small JPEG whose SOF header claims width x height pixels."""
    data = bytearray(jpeg(7, 64, 48))
    at = data.find(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def reterminated_jpeg(seed: int = 8) -> bytes:
    """A JPEG cut in the middle of its entropy-coded data and closed again with an EOI marker (Pillow decodes it
    without complaint, filling the missing part with grey)."""
    data = jpeg(seed, 640, 480)
    return data[: len(data) // 2] + b"\xff\xd9"


def image_shard(path: Path, image: bytes, ext: str = "jpg", **over: Any) -> Path:
    """A good sample, then one whose image is `image` (record dims from `over`)."""
    meta = record(image, **over)
    return write(path, [*pair(500), member(f"{meta['key']}.json", json.dumps(meta).encode()),
                        member(f"{meta['key']}.{ext}", image)])


# ---- npz crafts ---------------------------------------------------------------------------------------------------

class _Boom:
    """Unpickling this object runs code: it creates the file named in its argument."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def pickled_npz(path: Path, member_name: str, marker: Path, **others: Any) -> Path:
    """An npz whose `member_name` is an object array whose unpickling creates `marker`."""
    import numpy as np

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = _Boom(str(marker)), "x"
    np.savez(path, **{member_name: arr}, **others)
    return path
