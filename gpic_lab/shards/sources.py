"""Shard lists as WebDataset and fsspec users write them, and slices of them for parallel workers.

``expand(patterns)`` turns what a user types into shard paths, in order:

- brace ranges and alternatives (``gpic_train_{00000..07999}.tar``, ``{train,val}/``; the ``braceexpand`` package,
  zero padding kept), local or URL;
- local globs (``train/*.tar``, ``**`` recursive) and directories (every ``.tar`` below, sorted);
- fsspec URLs: a URL glob (``hf://datasets/org/name/train/*.tar``, ``s3://bucket/gpic/*.tar``) or a URL ending in
  ``/`` (every ``.tar`` below) is listed through its filesystem, which needs the backend installed (``s3fs`` for
  s3://; ``huggingface_hub`` for hf://); any other URL is kept as given and opened when read;
- ``http(s)://`` URLs are kept as given (HTTP has no listing: write a brace range).

A path that exists as written is never expanded (a file name may hold ``{`` or ``[``).

``select(shards, shard_range=..., rank=..., world_size=...)`` picks one worker's part of the **sorted** list:
``"START:STOP"`` (Python slice bounds, STOP clipped to the list) or the ``rank``-th of ``world_size`` contiguous
blocks. The parts of ``0:S, S:2S, ...`` or of ranks ``0..W-1`` cover every shard exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gpic_lab.errors import UsageError

GLOB_CHARS = frozenset("*?[")


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` strings."""
    return "://" in str(path)


def _is_http(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def has_glob(text: str) -> bool:
    """Does ``text`` hold a glob character (``*``, ``?``, ``[``)?"""
    return any(c in GLOB_CHARS for c in text)


def braces(text: str) -> list[str]:
    """Brace expansion of one pattern (``a_{0..2}.tar`` -> three names); the text itself when it has no braces."""
    if "{" not in text or (not is_url(text) and Path(text).exists()):
        return [text]
    from braceexpand import UnbalancedBracesError, braceexpand

    try:
        return list(braceexpand(text))
    except UnbalancedBracesError as exc:
        raise UsageError(f"{text}: {exc}") from None


def _local(item: str) -> list[str]:
    path = Path(item)
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*.tar") if p.is_file())
        if not found:
            raise UsageError(f"{path}: directory holds no .tar shards")
        return found
    if path.is_file():
        return [item]
    if has_glob(item):
        import glob

        matches = sorted(glob.glob(item, recursive=True))
        out = [s for m in matches for s in (_local(m) if Path(m).is_dir() else [m] if Path(m).is_file() else [])]
        if not out:
            raise UsageError(f"{item}: no shard matches this pattern")
        return out
    raise UsageError(f"{path}: no such file or directory")


def _remote(item: str) -> list[str]:
    if _is_http(item):
        if has_glob(item) or item.endswith("/"):
            raise UsageError(f"{item}: HTTP(S) cannot be listed; give the shards or a brace range "
                             "(gpic_train_{00000..00099}.tar)")
        return [item]
    if not has_glob(item) and not item.endswith("/"):
        return [item]
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(item.rstrip("/"))
        found = sorted(p for p in fs.glob(root if has_glob(item) else f"{root}/**") if p.endswith(".tar"))
    except ImportError as exc:
        raise UsageError(f"{item}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise UsageError(f"{item}: cannot list ({type(exc).__name__}: {exc})") from exc
    if not found:
        raise UsageError(f"{item}: no .tar shard matches")
    return [fs.unstrip_protocol(p) for p in found]


def expand(patterns: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Shard paths/URLs from directories, files, URLs, brace ranges and globs, in the order given.

    Raises:
        UsageError: a path that does not exist, a pattern that matches nothing, a missing fsspec backend.
    """
    out: list[str] = []
    for raw in patterns:
        for item in braces(str(raw)):
            out.extend(_remote(item) if is_url(item) else _local(item))
    return out


def split_list(text: str) -> list[str]:
    """A comma-separated list of shard patterns, where commas inside ``{...}`` belong to the pattern."""
    items, depth, current = [], 0, []
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [s.strip() for s in items if s.strip()]


def parse_range(spec: str | None) -> tuple[int, int] | None:
    """``"START:STOP"`` -> (start, stop); ``""``/None -> None (all shards).

    Raises:
        UsageError: anything but two integers 0 <= START < STOP.
    """
    if spec is None or not str(spec).strip():
        return None
    try:
        start_s, stop_s = str(spec).split(":")
        start, stop = int(start_s), int(stop_s)
    except ValueError:
        raise UsageError(f"shard range {spec!r}: expected START:STOP (e.g. 0:100)") from None
    if start < 0 or stop <= start:
        raise UsageError(f"shard range {spec!r}: need 0 <= START < STOP")
    return start, stop


def select(shards: Iterable[str], shard_range: str | None = None, rank: int | None = None,
           world_size: int | None = None) -> list[str]:
    """One worker's shards: a ``START:STOP`` range or a ``rank`` of ``world_size`` over the sorted list.

    Without a range or rank the list is returned as given. A range that holds no shard is a UsageError (a fan-out
    past the end of the corpus); a rank may get none (more workers than shards).
    """
    shards = list(shards)
    bounds = parse_range(shard_range)
    if (rank is None) != (world_size is None):
        raise UsageError("--rank and --world-size go together")
    if bounds is not None and rank is not None:
        raise UsageError("give either a shard range or --rank/--world-size, not both")
    if bounds is None and rank is None:
        return shards
    ordered = sorted(shards)
    if rank is not None:
        assert world_size is not None
        if world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(f"--rank {rank} --world-size {world_size}: need 0 <= RANK < WORLD_SIZE")
        n = len(ordered)
        return ordered[n * rank // world_size: n * (rank + 1) // world_size]
    assert bounds is not None
    picked = ordered[bounds[0]:bounds[1]]
    if not picked:
        raise UsageError(f"shard range {bounds[0]}:{bounds[1]} selects no shard of the {len(ordered)} given")
    return picked


def range_tag(shard_range: str | None = None, rank: int | None = None, world_size: int | None = None) -> str:
    """A file-name tag for a worker's part: ``000000-000100``, ``rank-0-of-8``, or ``all``."""
    bounds = parse_range(shard_range)
    if bounds is not None:
        return f"{bounds[0]:06d}-{bounds[1]:06d}"
    if rank is not None:
        return f"rank-{rank}-of-{world_size}"
    return "all"


def identity(shard: str) -> dict[str, str | int] | None:
    """What identifies a shard's bytes for a cache key, without reading them.

    Local: resolved path, size and mtime. ``http(s)``: URL, ``Content-Length``, ``ETag`` and ``Last-Modified`` from a
    HEAD request. Other fsspec URLs: URL, size and the ETag / modification time its filesystem reports. None when a
    URL reports neither an ETag nor a modification time (its content cannot be told apart: do not cache it).

    Raises:
        OSError: the shard cannot be reached.
    """
    if not is_url(shard):
        st = Path(shard).stat()
        return {"path": str(Path(shard).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if _is_http(shard):
        from gpic_lab.shards.remote import head_http

        headers = head_http(shard)
        ident = {"url": shard, "size": headers.get("content-length", ""), "etag": headers.get("etag", ""),
                 "modified": headers.get("last-modified", "")}
    else:
        import fsspec

        fs, path = fsspec.core.url_to_fs(shard)
        info = fs.info(path)
        etag = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "blob_id", "lfs") if info.get(k)), "")
        modified = next((str(info[k]) for k in ("LastModified", "last_modified", "mtime", "updated", "created")
                         if info.get(k)), "")
        ident = {"url": shard, "size": str(info.get("size", "")), "etag": etag, "modified": modified}
    return ident if ident["etag"] or ident["modified"] else None
