"""Read GPIC WebDataset shards: `{key}.json` then `{key}.jpg|png`, grouped by key, streamed from local paths
or fsspec URLs without extracting anything. `iter_entries` reports problems and keeps going; `iter_samples`
raises on the first one. `ShardIndex` gives random access by key through byte offsets."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from gpic_lab.errors import ShardError, UsageError, printable
from gpic_lab.shards.schema import MAX_JSON_BYTES, record_problem
from gpic_lab.shards.tarscan import TarMember, iter_members, unsafe_reason

IMAGE_EXTS = ("jpg", "png")
MAGIC = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
HEAD_BYTES = 32


@dataclass(frozen=True, slots=True)
class Sample:
    """One GPIC sample: its JSON record (parsed and raw) and where its image lives in the shard."""

    key: str
    shard: str
    meta: dict[str, Any]
    json_bytes: bytes
    image_ext: str
    image: bytes | None  # None when iterating metadata only
    json_offset: int
    json_size: int
    image_offset: int
    image_size: int
    image_head: bytes = b""

    @property
    def sniffed_format(self) -> str | None:
        """'jpg' or 'png' from the image's magic bytes, or None if neither."""
        head = self.image[:HEAD_BYTES] if self.image is not None else self.image_head
        return next((ext for ext, magic in MAGIC.items() if head.startswith(magic)), None)

    def open_image(self) -> Any:
        """The decoded PIL image (requires images to have been read)."""
        import io

        from PIL import Image

        if self.image is None:
            raise ValueError(f"{self.shard}:{self.key}.{self.image_ext}: image bytes were not read")
        return Image.open(io.BytesIO(self.image))


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem found while reading a shard (codes: see gpic_lab.shards.validate.CODES)."""

    shard: str
    member: str
    code: str
    message: str
    key: str | None = None

    def line(self) -> str:
        """`<shard>:<member>: <code>: <message>`, control characters escaped (one line whatever the names hold)."""
        return f"{printable(self.shard)}:{printable(self.member)}: {self.code}: {printable(self.message)}"


def is_url(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path)


def list_shards(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Shard paths from files, directories (their *.tar files, sorted, recursive), URLs, brace ranges and globs
    (``gpic_lab.shards.sources.expand``).

    Raises UsageError for a path that does not exist, a directory without tars or a pattern that matches nothing.
    """
    from gpic_lab.shards.sources import expand

    return expand(paths)


def _fsspec_open(url: str) -> Any:
    """fsspec.open(url, "rb"), with a missing protocol backend (s3fs, gcsfs, ...) as a one-line usage error."""
    import fsspec

    try:
        return fsspec.open(url, "rb")
    except ImportError as exc:
        raise UsageError(f"{url}: {exc}") from exc


@contextlib.contextmanager
def open_shard(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a local shard (buffered, seekable) or a remote one (streamed): http(s) through `gpic_lab.shards.remote`
    (network faults are OSErrors naming the URL), other protocols through fsspec."""
    from gpic_lab.shards.remote import is_http, open_http

    if is_http(str(path)):
        with open_http(str(path)) as fh:
            yield fh
    elif is_url(path):
        with _fsspec_open(str(path)) as fh:
            yield fh
    else:
        with open(path, "rb", buffering=1 << 20) as fh:
            yield fh


@dataclass
class _Half:
    member: TarMember
    index: int


@dataclass
class _Grouper:
    """Pairs `{key}.json` with `{key}.jpg|png` as members stream by, remembering unpaired halves."""

    shard: str
    pending: dict[str, dict[str, _Half]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    last_stem: str | None = None

    def add(self, member: TarMember, index: int) -> Iterator[Sample | Problem]:
        stem, _, ext = member.name.rpartition(".")
        kind = "json" if ext == "json" else "image"
        halves = self.pending.setdefault(stem, {})
        if kind in halves:
            yield Problem(self.shard, member.name, "duplicate-key", f"second {kind} member for key {stem}", stem)
            return
        halves[kind] = _Half(member, index)
        if len(halves) < 2:
            return
        del self.pending[stem]
        json_half, image_half = halves["json"], halves["image"]
        if abs(json_half.index - image_half.index) != 1:
            yield Problem(self.shard, member.name, "non-adjacent-pair",
                          f"members of key {stem} are not consecutive (positions {json_half.index} and {image_half.index})", stem)
            return
        if stem in self.seen:
            yield Problem(self.shard, member.name, "duplicate-key", f"key {stem} appears twice in this shard", stem)
            return
        self.seen.add(stem)
        yield _make_sample(self.shard, stem, json_half.member, image_half.member)

    def leftovers(self, cut_key: str | None = None) -> Iterator[Problem]:
        """Unpaired halves; the sample a truncation cut through is already reported by the truncation."""
        for stem, halves in self.pending.items():
            if stem == cut_key:
                continue
            if "json" in halves:
                yield Problem(self.shard, halves["json"].member.name, "missing-image", f"no image member for key {stem}", stem)
            else:
                yield Problem(self.shard, halves["image"].member.name, "missing-json", f"no JSON member for key {stem}", stem)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _make_sample(shard: str, stem: str, js: TarMember, img: TarMember) -> Sample | Problem:
    if js.size > MAX_JSON_BYTES:
        return Problem(shard, js.name, "bad-json", f"JSON member of {js.size} bytes (limit {MAX_JSON_BYTES})", stem)
    raw = js.data or b""
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return Problem(shard, js.name, "bad-json", "JSON member is not valid UTF-8", stem)
    except json.JSONDecodeError as exc:
        return Problem(shard, js.name, "bad-json", f"unparseable JSON ({exc.msg} at char {exc.pos})", stem)
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, integers past the digit limit, absurd nesting
        return Problem(shard, js.name, "bad-json", f"unparseable JSON ({type(exc).__name__}: {str(exc)[:80]})", stem)
    if not isinstance(meta, dict):
        return Problem(shard, js.name, "bad-json", f"JSON is a {type(meta).__name__}, not an object", stem)
    unusable = record_problem(meta, raw)
    if unusable:
        return Problem(shard, js.name, *unusable, stem)
    if meta.get("key") != stem:
        return Problem(shard, js.name, "key-mismatch", f"JSON key {meta.get('key')!r} differs from member stem {stem!r}", stem)
    ext = img.name.rpartition(".")[2]
    return Sample(stem, shard, meta, raw, ext, img.data, js.offset, js.size, img.offset, img.size, img.head or (img.data or b"")[:HEAD_BYTES])


def member_problem(shard: str, member: TarMember) -> Problem | None:
    """A problem with a single member's name or type (unsafe or unexpected), or None."""
    reason = unsafe_reason(member)
    if reason:
        return Problem(shard, member.name, "unsafe-member-name", reason)
    if member.kind != "file":
        return Problem(shard, member.name, "unexpected-member", f"{member.kind} member (only .json/.jpg/.png files belong in a GPIC shard)")
    stem, dot, ext = member.name.rpartition(".")
    if not dot or not stem or "/" in member.name or ext not in ("json", *IMAGE_EXTS):
        return Problem(shard, member.name, "unexpected-member", "not a flat {key}.json/.jpg/.png member")
    return None


def _json_limit(name: str) -> int | None:
    return MAX_JSON_BYTES if name.endswith(".json") else None


def iter_entries(path: str | os.PathLike[str], images: bool = True) -> Iterator[Sample | Problem]:
    """Yield Samples and Problems for one shard, continuing past problems; truncation ends the shard."""
    shard = str(path)

    def want(name: str) -> bool:
        return images or name.endswith(".json")

    grouper = _Grouper(shard)
    cut_key = None
    try:
        with open_shard(path) as fh:
            for index, member in enumerate(iter_members(fh, shard, want=want, head=HEAD_BYTES, max_data=_json_limit)):
                problem = member_problem(shard, member)
                if problem:
                    yield problem
                    continue
                yield from grouper.add(member, index)
    except ShardError as exc:
        stem, dot, _ = exc.member.rpartition(".")
        cut_key = stem if dot and exc.member != "-" else None
        yield Problem(exc.shard, exc.member, exc.code, exc.message, cut_key)
    except OSError as exc:
        yield Problem(shard, "-", "truncated-tar", f"cannot read shard: {exc}")
    yield from grouper.leftovers(cut_key)


def iter_samples(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], images: bool = True) -> Iterator[Sample]:
    """Yield the samples of one or more shards (directories expand to their tars); raise ShardError on a problem."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for shard in list_shards(paths):
        for entry in iter_entries(shard, images=images):
            if isinstance(entry, Problem):
                raise ShardError(entry.shard, entry.member, entry.code, entry.message)
            yield entry


class ShardIndex:
    """Random access by key: byte offsets of every sample in a set of shards."""

    def __init__(self, rows: dict[str, Sample]) -> None:
        self._rows = rows

    @classmethod
    def build(cls, paths: Iterable[str | os.PathLike[str]]) -> ShardIndex:
        """Index shards with a metadata-only scan (images are not read)."""
        return cls({s.key: s for s in iter_samples(list(paths), images=False)})

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> list[str]:
        return list(self._rows)

    def get(self, key: str) -> Sample:
        """The full sample for `key`, reading only its two members' bytes."""
        row = self._rows[key]
        image = read_range(row.shard, row.image_offset, row.image_size)
        return Sample(row.key, row.shard, row.meta, row.json_bytes, row.image_ext, image, row.json_offset,
                      row.json_size, row.image_offset, row.image_size, image[:HEAD_BYTES])


def read_range(path: str | os.PathLike[str], offset: int, size: int) -> bytes:
    """Read `size` bytes at `offset` from a local shard or a URL (fsspec range request)."""
    from gpic_lab.shards.remote import is_http, read_http_range

    if is_http(str(path)):
        data = read_http_range(str(path), offset, size)
    elif is_url(path):
        with _fsspec_open(str(path)) as fh:
            fh.seek(offset)
            data = fh.read(size)
    else:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(size)
    if len(data) != size:
        raise ShardError(str(path), "-", "truncated-tar", f"short read at byte {offset}")
    return data
