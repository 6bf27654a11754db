"""Collected images -> GPIC shards, with provenance, exact-byte dedup and crash-safe progress.

Layout of an output directory:
  shards/<prefix>_NNNNN.tar        GPIC records (no URLs), caption fields empty, split []
  provenance/<prefix>_NNNNN.parquet  key -> source, source_id, image_url, page_url, raw license strings, ...
  state.json                       query, cursor, shard_index, spool, counts, deferred downloads (atomic)
  handled.txt                      source ids of every listed entry already handled (append-only; the state
                                   records its committed length)
  .spool/<key>.<ext>               downloaded images of committed pages not yet in a shard

Commit protocol: images are spooled (atomic write) as they arrive; at the end of each API page the handled ids are
appended to handled.txt (fsync), then the state is written with the next cursor, the spool list, the deferred
queue and handled.txt's length; full shards are then cut from the spool (provenance, shard, state, in that order).
A crash at any point re-does at most the uncommitted page (handled.txt is cut back to the committed length, so its
entries are handled again); a shard written but not yet recorded in the state is rewritten byte-identically from
the spool. Each listed source id is handled once: nothing is lost, nothing is written or counted twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpic_lab.collect.base import Candidate
from gpic_lab.collect.queue import DeferredQueue
from gpic_lab.core.licenses import License, build_attribution
from gpic_lab.errors import GpicError, UsageError
from gpic_lab.fsio import write_bytes_atomic, write_json_atomic, write_parquet_atomic
from gpic_lab.shards.provenance import FLAG_COLUMNS
from gpic_lab.shards.schema import new_record

STATE_VERSION = 2
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's default bomb limit
# flag columns: Commons extmetadata AttributionRequired / Copyrighted / NonFree / Restrictions as given, and the
# size variant collected (Flickr extras size name, Commons "original" or the thumbnail box like "640px")
PROVENANCE_COLUMNS = ("key", "shard", "source", "source_id", "image_url", "page_url", "title", "author",
                      "license_name_raw", "license_url_raw", "license_spdx", "retrieved_at", "img_width",
                      "img_height", "bytes", "declared_width", "declared_height", *FLAG_COLUMNS)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with a Z suffix, second precision (GPIC's retrieved_at format)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def decode_size(body: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int] | str:
    """(ext, width, height) from a full decode of JPEG/PNG bytes, or a reason string
    (not-an-image, unsupported-format, too-many-pixels, image-undecodable)."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(body))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return "not-an-image"
    fmt = {"JPEG": "jpg", "PNG": "png"}.get(im.format or "")
    if fmt is None:
        return "unsupported-format"
    width, height = im.size
    if width * height > max_pixels:
        return "too-many-pixels"
    try:
        im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "image-undecodable"
    return fmt, width, height


@dataclass
class Prepared:
    """A downloaded image checked and spooled (by a download thread), waiting for the writer to accept it."""

    key: str
    ext: str
    meta: dict[str, Any]
    prov: dict[str, Any]


def prepare(cand: Candidate, body: bytes, lic: License, spool_dir: Path,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> Prepared | str:
    """Decode, verify and spool one downloaded image; a reason string when it cannot be collected.

    Thread-safe (no shared state): the spool file is named by the image's sha256, so two threads spooling the same
    bytes write the same file. Which copy wins (exact-byte dedup) is decided by `ShardCollector.accept`.
    """
    decoded = decode_size(body, max_pixels)
    if isinstance(decoded, str):
        return decoded
    if cand.sha1 and hashlib.sha1(body).hexdigest() != cand.sha1.lower():
        return "sha1-mismatch"
    try:
        attribution = build_attribution(cand.author, cand.source, lic.spdx, cand.title)
    except UsageError:
        return "author-missing"
    ext, width, height = decoded
    key = hashlib.sha256(body).hexdigest()
    retrieved = utc_now()
    meta = new_record(key, width, height, lic.label, lic.url or cand.license_url, attribution, retrieved)
    prov = {"key": key, "source": cand.source, "source_id": cand.source_id, "image_url": cand.image_url,
            "page_url": cand.page_url, "title": cand.title, "author": cand.author,
            "license_name_raw": cand.license_name, "license_url_raw": cand.license_url,
            "license_spdx": lic.spdx, "retrieved_at": retrieved, "img_width": width, "img_height": height,
            "bytes": len(body), "declared_width": cand.width, "declared_height": cand.height,
            **{c: cand.flags.get(c) for c in FLAG_COLUMNS}}
    write_bytes_atomic(spool_dir / f"{key}.{ext}", body)
    return Prepared(key, ext, meta, prov)


class ShardCollector:
    """Resumable writer for one collection (one source + query) in `out`."""

    def __init__(self, out: str | Path, query: dict[str, Any], first_cursor: Any, shard_size: int = 1000,
                 prefix: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if shard_size < 1:
            raise UsageError(f"shard_size must be >= 1, got {shard_size}")
        self.out, self.shard_size, self.max_pixels = Path(out), shard_size, max_pixels
        self.prefix = prefix or f"gpic_{query.get('source', 'collect')}"
        self.state_path = self.out / "state.json"
        if self.state_path.exists():
            self.state = self._load(query)
        else:
            self.state = {"version": STATE_VERSION, "query": query, "prefix": self.prefix, "cursor": first_cursor,
                          "shard_index": 0, "spool": [], "counts": {}, "done": False, "shards": [],
                          "deferred": [], "handled_bytes": 0, "listing": {}}
        self.prefix = self.state["prefix"]
        self.counts: Counter = Counter(self.state["counts"])
        self.spool: list[dict[str, Any]] = list(self.state["spool"])
        self.seen: set[str] = self._committed_keys() | {e["key"] for e in self.spool}
        self.queue = DeferredQueue(self.state["deferred"])  # failed downloads waiting for another round
        self.listing: Counter = Counter(self.state["listing"])  # repeats, capped windows (not per-photo counts)
        self.handled_path = self.out / "handled.txt"
        self.handled: set[str] = self._load_handled()
        self._new_handled: list[str] = []
        self._clean_orphans()

    # -- state -------------------------------------------------------------------------------------------
    def _load(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise GpicError(f"{self.state_path}: unreadable collection state ({exc})") from None
        if state.get("version") != STATE_VERSION:
            raise GpicError(f"{self.state_path}: state version {state.get('version')} != {STATE_VERSION} (written by "
                            f"an older gpic-lab); collect into a new --out")
        stored = {k: v for k, v in state["query"].items() if k != "max_upload_date"}
        given = {k: v for k, v in query.items() if k != "max_upload_date"}
        if stored != given:
            raise UsageError(f"{self.out} holds a collection for a different query ({stored}); "
                             f"use another --out or the same options ({given})")
        return state

    @property
    def query(self) -> dict[str, Any]:
        return self.state["query"]

    @property
    def cursor(self) -> Any:
        return self.state["cursor"]

    @property
    def done(self) -> bool:
        return bool(self.state["done"])

    def shard_path(self, index: int) -> Path:
        return self.out / "shards" / f"{self.prefix}_{index:05d}.tar"

    def provenance_path(self, index: int) -> Path:
        return self.out / "provenance" / f"{self.prefix}_{index:05d}.parquet"

    def _load_handled(self) -> set[str]:
        """The committed handled ids; a tail appended after the last state commit is cut off (handled again)."""
        committed = int(self.state["handled_bytes"])
        if not self.handled_path.exists():
            if committed:
                raise GpicError(f"{self.handled_path}: missing, but the state records {committed} bytes of it")
            return set()
        with open(self.handled_path, "rb+") as fh:
            data = fh.read(committed)
            if len(data) != committed:
                raise GpicError(f"{self.handled_path}: shorter than the {committed} bytes the state records")
            fh.truncate(committed)
        return set(data.decode("utf-8").splitlines())

    def _committed_keys(self) -> set[str]:
        import pyarrow.parquet as pq

        keys: set[str] = set()
        for i in range(int(self.state["shard_index"])):
            keys.update(pq.read_table(self.provenance_path(i), columns=["key"]).column("key").to_pylist())
        return keys

    def _clean_orphans(self) -> None:
        """Drop spool files and shard/provenance files the committed state does not know (a crash leftover)."""
        spool_dir = self.out / ".spool"
        listed = {f"{e['key']}.{e['ext']}" for e in self.spool}
        if spool_dir.is_dir():
            for f in spool_dir.iterdir():
                if f.name not in listed:
                    f.unlink()
        index = int(self.state["shard_index"])
        for folder, suffix in (("shards", ".tar"), ("provenance", ".parquet")):
            for f in (self.out / folder).glob(f"{self.prefix}_*{suffix}") if (self.out / folder).is_dir() else []:
                stem = f.name[len(self.prefix) + 1:-len(suffix)]
                if stem.isdigit() and int(stem) >= index:
                    f.unlink()

    def _save(self, **changes: Any) -> None:
        self._append_handled()
        self.state.update(changes)
        self.state["counts"] = dict(sorted(self.counts.items()))
        self.state["spool"] = self.spool
        self.state["deferred"] = self.queue.as_json()
        self.state["listing"] = dict(sorted(self.listing.items()))
        write_json_atomic(self.state_path, self.state)

    def _append_handled(self) -> None:
        """Append the ids handled since the last commit to handled.txt (fsync), recording the new length."""
        if not self._new_handled:
            return
        data = "".join(f"{i}\n" for i in self._new_handled).encode("utf-8")
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.handled_path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self.state["handled_bytes"] = int(self.state["handled_bytes"]) + len(data)
        self._new_handled = []

    # -- items -------------------------------------------------------------------------------------------
    def is_handled(self, source_id: str) -> bool:
        """Whether a listed entry was handled already (in this run or a committed earlier one)."""
        return bool(source_id) and source_id.replace("\n", " ") in self.handled

    def mark_handled(self, source_id: str) -> None:
        """Record a listed entry as handled (persisted at the next commit)."""
        source_id = source_id.replace("\n", " ")
        if source_id and source_id not in self.handled:
            self.handled.add(source_id)
            self._new_handled.append(source_id)

    def count(self, reason: str, n: int = 1) -> None:
        """Count a listed entry that was not collected, by reason."""
        self.counts[reason] += n

    @property
    def spool_dir(self) -> Path:
        return self.out / ".spool"

    def add(self, cand: Candidate, body: bytes, lic: License) -> str:
        """Spool one downloaded image; returns 'written' or the reason it was not (also counted)."""
        return self.accept(prepare(cand, body, lic, self.spool_dir, self.max_pixels))

    def accept(self, prep: Prepared | str) -> str:
        """Take a prepared image into the spool (or count why not); returns 'written' or the reason."""
        if isinstance(prep, str):
            return self._skip(prep)
        if prep.key in self.seen:
            if not any(e["key"] == prep.key for e in self.spool):  # the file is no spool entry's: drop it
                (self.spool_dir / f"{prep.key}.{prep.ext}").unlink(missing_ok=True)
            return self._skip("duplicate-bytes")
        self.spool.append({"key": prep.key, "ext": prep.ext, "meta": prep.meta, "prov": prep.prov})
        self.seen.add(prep.key)
        self.counts["written"] += 1
        return "written"

    def _skip(self, reason: str) -> str:
        self.counts[reason] += 1
        return reason

    # -- commits -----------------------------------------------------------------------------------------
    def page_done(self, next_cursor: Any) -> None:
        """Commit a finished page: handled ids, next cursor, spool, deferred queue; then cut every full shard."""
        self._save(cursor=next_cursor)
        while len(self.spool) >= self.shard_size:
            self._cut(self.shard_size)

    def stop(self, cursor: Any) -> None:
        """Commit a stop (inside a page, or with downloads still deferred) and flush the spool. The page at
        `cursor` is listed again on resume; its entries handled so far are recognised by id and skipped."""
        self._save(cursor=cursor)
        self.flush()

    def finish(self) -> None:
        """The listing is exhausted and nothing is deferred: flush the spool and mark the collection done."""
        self._save(cursor=None)
        self.flush()
        self._save(done=True)

    def flush(self) -> None:
        """Write every spooled image into shards (the last one may be short)."""
        while self.spool:
            self._cut(min(self.shard_size, len(self.spool)))

    def _cut(self, n: int) -> None:
        index = int(self.state["shard_index"])
        entries, path = self.spool[:n], self.shard_path(index)
        self._write_provenance(index, entries, path.name)
        from gpic_lab.shards.writer import write_shard

        spool_dir = self.out / ".spool"
        write_shard(path, ((e["key"], e["meta"], (spool_dir / f"{e['key']}.{e['ext']}").read_bytes(), e["ext"])
                           for e in entries))
        self.spool = self.spool[n:]
        self._save(shard_index=index + 1, shards=[*self.state["shards"], path.name])
        for e in entries:
            (spool_dir / f"{e['key']}.{e['ext']}").unlink(missing_ok=True)

    def _write_provenance(self, index: int, entries: list[dict[str, Any]], shard: str) -> None:
        import pyarrow as pa

        rows = [{**e["prov"], "shard": shard} for e in entries]
        table = pa.Table.from_pylist(rows, schema=_provenance_schema())
        write_parquet_atomic(self.provenance_path(index), table)


def _provenance_schema() -> Any:
    import pyarrow as pa

    ints = {"img_width", "img_height", "bytes", "declared_width", "declared_height"}
    return pa.schema([(c, pa.int64() if c in ints else pa.string()) for c in PROVENANCE_COLUMNS])


def read_provenance(out: str | Path) -> Any:
    """All provenance rows of a collection directory as a pandas DataFrame (empty frame when none)."""
    import pandas as pd
    import pyarrow.parquet as pq

    files = sorted((Path(out) / "provenance").glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(PROVENANCE_COLUMNS))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
