"""The collection loop: page through a source, filter by license, download, spool, commit, resume.

`collect_flickr(...)` / `collect_commons(...)` are the entry points used by `gpic-lab collect` and notebook 02.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.collect.base import Candidate, Source
from gpic_lab.collect.http import BudgetExhausted, HttpClient, HttpError
from gpic_lab.collect.writer import DEFAULT_MAX_PIXELS, ShardCollector
from gpic_lab.core.licenses import normalize

log = logging.getLogger("gpic_lab.collect")


@dataclass
class CollectResult:
    """What one invocation did. status: done (listing exhausted), limit (max_items reached), budget (requests
    spent; rerun to resume)."""

    out: Path
    status: str
    counts: dict[str, int]
    shards: list[str]
    http: dict[str, Any]
    pages: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "status": self.status, "counts": self.counts, "shards": self.shards,
                "http": self.http, "pages": self.pages}


def collect(source: Source, client: HttpClient, out: str | Path, shard_size: int = 1000,
            max_items: int | None = None, permissive_only: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
            prefix: str | None = None) -> CollectResult:
    """Collect from `source` into `out`, resuming from its state.json when present.

    Args:
        max_items: stop after this many images written in this invocation (state kept; rerun continues).
        permissive_only: skip (and count) listed images whose license is not on GPIC's allow-list before
            downloading them; with False every license is collected and left for the `license` stage.
    """
    writer = ShardCollector(out, source.query(), source.first_cursor(), shard_size, prefix, max_pixels)
    getattr(source, "restore", lambda q: None)(writer.query)
    if writer.done:
        return _result(writer, client, "done", 0)
    cursor, offset, written, pages = writer.cursor, writer.page_offset, 0, 0
    try:
        while cursor is not None:
            if max_items is not None and written >= max_items:
                writer.stop(cursor, offset)
                return _result(writer, client, "limit", pages)
            page = source.fetch(cursor)
            pages += 1
            for i in range(offset, len(page.items)):
                if max_items is not None and written >= max_items:
                    writer.stop(cursor, i)
                    return _result(writer, client, "limit", pages)
                outcome = _one(page.items[i], client, writer, permissive_only)
                if outcome == "budget":
                    writer.stop(cursor, i)
                    return _result(writer, client, "budget", pages)
                written += outcome == "written"
            cursor, offset = page.next_cursor, 0
            writer.page_done(cursor)
    except BudgetExhausted:  # while fetching a page: nothing of that page was handled
        writer.stop(cursor, offset)
        return _result(writer, client, "budget", pages)
    writer.finish()
    return _result(writer, client, "done", pages)


def _one(item: Candidate | str, client: HttpClient, writer: ShardCollector, permissive_only: bool) -> str:
    """Handle one listed entry; returns 'written', a skip reason, or 'budget'."""
    if isinstance(item, str):
        writer.count(item)
        return item
    lic = normalize(item.license_name, item.license_url or None)
    if permissive_only and not lic.permissive:
        writer.count(lic.reason or "license-unknown")
        return lic.reason or "license-unknown"
    try:
        body = client.get(item.image_url)
    except BudgetExhausted:
        return "budget"
    except HttpError as exc:
        log.warning("download failed (%s): %s", exc.reason, client.redact(str(exc)))
        writer.count(f"download-{exc.reason or 'failed'}")
        return "download-failed"
    return writer.add(item, body, lic)


def _result(writer: ShardCollector, client: HttpClient, status: str, pages: int) -> CollectResult:
    return CollectResult(writer.out, status, dict(sorted(writer.counts.items())), list(writer.state["shards"]),
                         client.stats.as_dict(), pages)


def make_client(budget: int | None = None, rate: float | None = None, retries: int = 5, timeout: float = 30.0,
                backoff: float = 0.5, seed: int | None = None, user_agent: str | None = None) -> HttpClient:
    """An HttpClient with the collection defaults."""
    from gpic_lab.collect.http import USER_AGENT

    return HttpClient(budget=budget, rate=rate, retries=retries, timeout=timeout, backoff=backoff, seed=seed,
                      user_agent=user_agent or USER_AGENT)


def collect_flickr(out: str | Path, base_url: str | None = None, api_key: str | None = None,
                   license_ids: str | None = None, size: str = "c", per_page: int = 100,
                   min_upload_date: str | None = None, max_upload_date: str | None = None,
                   min_taken_date: str | None = None, max_taken_date: str | None = None, text: str | None = None,
                   tags: str | None = None, client: HttpClient | None = None, **kwargs: Any) -> CollectResult:
    """Collect Flickr search results into GPIC shards in `out` (key from $FLICKR_API_KEY unless given)."""
    from gpic_lab.collect.flickr import FLICKR_API, FlickrSource, api_key_from_env, parse_license_ids

    client = client or make_client()
    key = api_key or api_key_from_env()
    source = FlickrSource(client, key, base_url or FLICKR_API, parse_license_ids(license_ids),
                          min_upload_date, max_upload_date, min_taken_date, max_taken_date, text, tags, size, per_page)
    return collect(source, client, out, **kwargs)


def collect_commons(out: str | Path, base_url: str | None = None, category: str | None = None,
                    start: str | None = None, limit: int = 50, thumb_width: int | None = None,
                    client: HttpClient | None = None, **kwargs: Any) -> CollectResult:
    """Collect Wikimedia Commons files (a category, or all images from `start`) into GPIC shards in `out`."""
    from gpic_lab.collect.commons import COMMONS_API, CommonsSource

    client = client or make_client()
    source = CommonsSource(client, base_url or COMMONS_API, category, start, limit, thumb_width)
    return collect(source, client, out, **kwargs)
