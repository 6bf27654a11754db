"""The collection loop: page through a source, filter by license, download concurrently, spool, commit, resume.

`collect_flickr(...)` / `collect_commons(...)` are the entry points used by `gpic-lab collect` and notebook 02.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.collect.base import Source
from gpic_lab.collect.http import BudgetExhausted, HttpClient
from gpic_lab.collect.limits import (
    FLICKR_CDN_CONCURRENCY,
    WIKIMEDIA_MEDIA_CONCURRENCY,
    WIKIMEDIA_MEDIA_MBPS,
    Limits,
)
from gpic_lab.collect.pipeline import Policy, Processor
from gpic_lab.collect.writer import DEFAULT_MAX_PIXELS, ShardCollector
from gpic_lab.errors import UsageError

log = logging.getLogger("gpic_lab.collect")
# OUR ASSUMPTION: more than 1% of downloads failed (for good or still pending) makes a run a failure (exit 4).
DEFAULT_MAX_FAILED_SHARE = 0.01


@dataclass
class CollectResult:
    """What one invocation did.

    status: done (listing exhausted, nothing pending), limit (max_items reached), budget (requests spent; rerun to
    resume), pending (listing exhausted, some downloads deferred until later; rerun to retry them), blocked (the
    image host refused `block_after` downloads in a row; fix the cause and rerun). pending: the deferred downloads
    (count, by reason, seconds until the next is due). listing: repeats (entries listed again, handled once),
    window splits and capped windows (Flickr)."""

    out: Path
    status: str
    counts: dict[str, int]
    shards: list[str]
    http: dict[str, Any]
    pages: int = 0
    pending: dict[str, Any] = field(default_factory=dict)
    listing: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Downloads that failed for good (counted download-<reason>)."""
        return sum(v for k, v in self.counts.items() if k.startswith("download-"))

    @property
    def failed_share(self) -> float:
        """(failed + pending) / (written + failed + pending): the share of downloads that did not succeed."""
        bad = self.failed + int(self.pending.get("count", 0))
        return bad / max(1, bad + self.counts.get("written", 0))

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "status": self.status, "counts": self.counts, "shards": self.shards,
                "http": self.http, "pages": self.pages, "pending": self.pending, "listing": self.listing,
                "failed_share": round(self.failed_share, 4)}


def collect(source: Source, client: HttpClient, out: str | Path, shard_size: int = 1000,
            max_items: int | None = None, permissive_only: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
            prefix: str | None = None, policy: Policy | None = None, progress: bool = False) -> CollectResult:
    """Collect from `source` into `out`, resuming from its state.json when present.

    Args:
        max_items: stop after this many images written in this invocation (state kept; rerun continues).
        permissive_only: skip (and count) listed images whose license is not on GPIC's allow-list before
            downloading them; with False every license is collected and left for the `license` stage.
        policy: failure handling (deferred rounds, block detection, end-of-listing wait); max_items,
            permissive_only and max_pixels given here override it.
        progress: a tqdm bar of written images on stderr.
    """
    policy = Policy(**{**(policy or Policy()).__dict__, "max_items": max_items, "permissive_only": permissive_only,
                       "max_pixels": max_pixels})
    writer = ShardCollector(out, source.query(), source.first_cursor(), shard_size, prefix, max_pixels)
    getattr(source, "restore", lambda q: None)(writer.query)
    if writer.done:
        return _result(writer, client, "done", 0)
    bar = _progress(progress)
    proc = Processor(client, writer, policy, bar)
    try:
        status, pages = _loop(source, writer, proc)
    finally:
        proc.close()
        if bar is not None:
            bar.close()
    return _result(writer, client, status, pages)


def _loop(source: Source, writer: ShardCollector, proc: Processor) -> tuple[str, int]:
    """Deferred downloads due from an earlier run first, then the listing, then the end-of-listing drain."""
    cursor, pages = writer.cursor, 0
    try:
        status = proc.retry_due()
        while status == "ok" and cursor is not None:
            if proc.limit_reached():
                status = "limit"
                break
            page = source.fetch(cursor)
            pages += 1
            for name in ("split", "capped"):
                writer.listing[f"windows_{name}"] += int(page.extra.get(name, 0))
            status = proc.run(page.items)
            if status != "ok":
                break
            cursor = page.next_cursor
            writer.page_done(cursor)
            log.info("page %d committed: %d written, %d deferred", pages, writer.counts["written"], len(writer.queue))
            status = proc.retry_due()
        if status == "ok":
            status = proc.drain()
    except BudgetExhausted:  # while fetching a page: nothing of that page was handled
        status = "budget"
    if status == "ok":
        writer.finish()
        return "done", pages
    writer.stop(cursor)
    return status, pages


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="img", desc="written", dynamic_ncols=True)


def _result(writer: ShardCollector, client: HttpClient, status: str, pages: int) -> CollectResult:
    return CollectResult(writer.out, status, dict(sorted(writer.counts.items())), list(writer.state["shards"]),
                         client.stats.as_dict(), pages, writer.queue.summary(), dict(sorted(writer.listing.items())))


def make_client(budget: int | None = None, rate: float | None = 1.0, retries: int = 5, timeout: float = 30.0,
                backoff: float = 0.5, seed: int | None = None, user_agent: str | None = None,
                concurrency: int = FLICKR_CDN_CONCURRENCY, bandwidth_mbps: float | None = None,
                download_rate: float | None = None, time_scale: float = 1.0,
                max_retry_after: float = 300.0) -> HttpClient:
    """An HttpClient with the collection defaults: `rate` limits API calls only; downloads have their own
    per-host concurrency, optional bandwidth (Mbps per host) and optional download rate."""
    from gpic_lab.collect.http import USER_AGENT

    limits = Limits(api_rate=rate or None, download_rate=download_rate or None, concurrency=concurrency,
                    bandwidth_mbps=bandwidth_mbps or None)
    return HttpClient(budget=budget, limits=limits, retries=retries, timeout=timeout, backoff=backoff, seed=seed,
                      user_agent=user_agent or USER_AGENT, time_scale=time_scale, max_retry_after=max_retry_after)


def collect_flickr(out: str | Path, base_url: str | None = None, api_key: str | None = None,
                   license_ids: str | None = None, size: str | None = None, per_page: int = 500,
                   min_upload_date: str | None = None, max_upload_date: str | None = None,
                   min_taken_date: str | None = None, max_taken_date: str | None = None, text: str | None = None,
                   tags: str | None = None, client: HttpClient | None = None, split_total: int | None = None,
                   **kwargs: Any) -> CollectResult:
    """Collect Flickr search results into GPIC shards in `out` (key from $FLICKR_API_KEY unless given).

    size: an uncropped extras size name (default "z", 640 px on the long side: GPIC's mean is 479 x 587)."""
    from gpic_lab.collect import windows
    from gpic_lab.collect.flickr import (
        DEFAULT_SIZE,
        FLICKR_API,
        FlickrSource,
        api_key_from_env,
        parse_license_ids,
    )

    client = client or make_client()
    key = api_key or api_key_from_env()
    source = FlickrSource(client, key, base_url or FLICKR_API, parse_license_ids(license_ids), min_upload_date,
                          max_upload_date, min_taken_date, max_taken_date, text, tags, size or DEFAULT_SIZE, per_page,
                          split_total or windows.SPLIT_TOTAL)
    return collect(source, client, out, **kwargs)


def collect_commons(out: str | Path, base_url: str | None = None, category: str | None = None,
                    start: str | None = None, limit: int = 50, thumb_width: int | None = None,
                    originals: bool = False, client: HttpClient | None = None, contact: str | None = None,
                    **kwargs: Any) -> CollectResult:
    """Collect Wikimedia Commons files (a category, or all images from `start`) into GPIC shards in `out`.

    Args:
        thumb_width: thumbnails fitting this box (default 640: GPIC's mean is 479 x 587); originals=True instead
            downloads the original files (verified against the API's SHA-1).
        contact: a URL or email for the User-Agent (default $GPIC_LAB_CONTACT; required, Wikimedia's policy). A
            given `client` keeps its own User-Agent, which must then carry the contact.
    """
    from gpic_lab.collect.commons import (
        COMMONS_API,
        DEFAULT_THUMB,
        CommonsSource,
        has_contact,
        wikimedia_user_agent,
    )

    if client is None:
        client = make_client(concurrency=WIKIMEDIA_MEDIA_CONCURRENCY, bandwidth_mbps=WIKIMEDIA_MEDIA_MBPS,
                             user_agent=wikimedia_user_agent(contact))
    elif contact or not has_contact(client.user_agent):
        client.user_agent = wikimedia_user_agent(contact)
    check_wikimedia_limits(client, base_url or COMMONS_API)
    if originals and thumb_width:
        raise UsageError("give either a thumbnail width or originals, not both")
    source = CommonsSource(client, base_url or COMMONS_API, category, start, limit,
                           None if originals else (thumb_width or DEFAULT_THUMB))
    return collect(source, client, out, **kwargs)


def check_wikimedia_limits(client: HttpClient, base_url: str) -> None:
    """UsageError when a client aimed at a Wikimedia API would exceed the media host's robot policy."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or ""
    if not (host.endswith("wikimedia.org") or host.endswith("wikipedia.org")):
        return
    lim = client.limits
    if lim.concurrency > WIKIMEDIA_MEDIA_CONCURRENCY:
        raise UsageError(f"Wikimedia's robot policy allows at most {WIKIMEDIA_MEDIA_CONCURRENCY} concurrent media "
                         f"downloads, got --concurrency {lim.concurrency}")
    if lim.bandwidth_mbps is None or lim.bandwidth_mbps > WIKIMEDIA_MEDIA_MBPS:
        raise UsageError(f"Wikimedia's robot policy allows at most {WIKIMEDIA_MEDIA_MBPS:g} Mbps of media downloads, "
                         f"got {lim.bandwidth_mbps or 'unlimited'}")
