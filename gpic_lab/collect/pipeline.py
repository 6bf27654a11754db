"""Handling listed entries: license filter and id dedup before download, concurrent downloads (bounded per host by
the client), results taken in listing order, failed downloads deferred and retried later.

Each listed source id is handled once (`ShardCollector.mark_handled`): a repeat (Flickr listing a photo twice, a
page listed again on resume) is recognised by id and neither downloaded nor counted again; repeats are tallied in
the collection's `listing` stats. A download that fails is not counted until its last round: it waits in the
deferred queue. A run of `block_after` consecutive failed downloads means the host refuses us (a User-Agent block, a
rate-limit ban): the run stops with status 'blocked' instead of burning through the listing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gpic_lab.collect.base import Candidate, Skip
from gpic_lab.collect.http import BudgetExhausted, HttpClient, HttpError
from gpic_lab.collect.queue import GONE_STATUS
from gpic_lab.collect.writer import DEFAULT_MAX_PIXELS, Prepared, ShardCollector, prepare
from gpic_lab.core.licenses import License, check_flags, normalize

log = logging.getLogger("gpic_lab.collect")
_BUDGET = "budget"
_BUDGET_HIT = object()  # a download refused because the request budget is spent


@dataclass(frozen=True)
class Policy:
    """How a collection handles items and failures.

    Args:
        max_items: stop after this many images written in this invocation (None: no limit).
        permissive_only: skip (and count) non-permissive licenses before downloading.
        max_pixels: decoded images above this are skipped as too-many-pixels.
        block_after: consecutive failed downloads (404/410 excluded) that stop the run as 'blocked'.
            OUR ASSUMPTION: 20.
        drain_wait_s: at the end of the listing, wait at most this long (times the client's time_scale) for a
            deferred download to become due; longer waits end the run as 'pending' (rerun later).
        max_tries: download rounds before a failure counts for good.
        defer_s: wait before a deferred round without Retry-After (doubles each round).
    """

    max_items: int | None = None
    permissive_only: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    block_after: int = 20
    drain_wait_s: float = 300.0
    max_tries: int = 3
    defer_s: float = 60.0


class Processor:
    """Runs listed entries through license filter, id dedup, download, decode and the writer."""

    def __init__(self, client: HttpClient, writer: ShardCollector, policy: Policy, progress: Any = None) -> None:
        self.client, self.writer, self.policy, self.progress = client, writer, policy, progress
        self.queue = writer.queue
        self.queue.max_tries, self.queue.defer_s = policy.max_tries, policy.defer_s
        self.queue.time_scale = client.time_scale
        workers = min(64, 2 * max(1, client.limits.concurrency))
        self.window = 2 * workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpic-download")
        self.written = 0
        self.consecutive_failures = 0
        self.blocked: str | None = None

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- entry points ----------------------------------------------------------------------------------
    def run(self, items: list[Candidate | Skip]) -> str:
        """Handle one page's entries; 'ok', or why it stopped inside the page: 'limit', 'budget', 'blocked'."""
        fresh, ids = [], set()
        for item in items:
            if item.source_id and (self.writer.is_handled(item.source_id) or item.source_id in ids):
                self.writer.listing["repeats"] += 1
                continue
            ids.add(item.source_id)
            fresh.append(item)
        return self._process(fresh)

    def retry_due(self) -> str:
        """Retry the deferred downloads that are due; 'ok' or why it stopped."""
        due = self.queue.due()
        if not due:
            return "ok"
        log.info("retrying %d deferred download(s)", len(due))
        return self._process([e.cand for e in due])

    def drain(self) -> str:
        """At the end of the listing: retry deferred downloads as they become due, waiting up to drain_wait_s
        for each; 'ok' when the queue is empty, 'pending' when the rest is due too late, or why it stopped."""
        limit = self.policy.drain_wait_s * self.client.time_scale
        while len(self.queue):
            status = self.retry_due()
            if status != "ok":
                return status
            nxt = self.queue.next_due()
            if nxt is None:
                break
            wait = nxt - time.time()
            if wait > limit:
                return "pending"
            if wait > 0:
                log.info("waiting %.1fs for %d deferred download(s)", wait, len(self.queue))
                time.sleep(wait)
        return "ok"

    def limit_reached(self) -> bool:
        return self.policy.max_items is not None and self.written >= self.policy.max_items

    # -- internals -------------------------------------------------------------------------------------
    def _process(self, items: list[Candidate | Skip]) -> str:
        pending: deque[tuple[Candidate | Skip, str | None, Future | None]] = deque()
        source = iter(items)

        def fill() -> None:
            while len(pending) < self.window:
                item = next(source, None)
                if item is None:
                    return
                pending.append(self._start(item))

        fill()
        try:
            while pending:
                if self.limit_reached():
                    return "limit"
                status = self._finish(*pending.popleft())
                if status == _BUDGET:
                    return _BUDGET
                if self.blocked:
                    return "blocked"
                fill()
            return "ok"
        finally:
            for _item, _reason, fut in pending:
                if fut is not None:
                    fut.cancel()

    def _start(self, item: Candidate | Skip) -> tuple[Candidate | Skip, str | None, Future | None]:
        """Begin one entry: (item, skip reason or None, download future or None)."""
        if isinstance(item, Skip):
            return item, item.reason, None
        lic = normalize(item.license_name, item.license_url or None)
        if self.policy.permissive_only:
            problems = [lic.reason] if lic.reason else [c for c, _m in check_flags(item.flags, lic)]
            if problems:
                return item, problems[0], None
        return item, None, self.pool.submit(self._download, item, lic)

    def _download(self, cand: Candidate, lic: License) -> Prepared | str | HttpError | object:
        """In a worker thread: download, decode, verify and spool one image."""
        try:
            body = self.client.get(cand.image_url, kind="download")
        except BudgetExhausted:
            return _BUDGET_HIT
        except HttpError as exc:
            return exc
        return prepare(cand, body, lic, self.writer.spool_dir, self.policy.max_pixels)

    def _finish(self, item: Candidate | Skip, reason: str | None, fut: Future | None) -> str:
        """Take one entry's outcome in listing order; returns what happened to it."""
        if fut is None:
            reason = reason or "license-unknown"
            self.writer.count(reason)
            self.writer.mark_handled(item.source_id)
            return reason
        result = fut.result()
        if result is _BUDGET_HIT:
            return _BUDGET
        self.writer.mark_handled(item.source_id)
        if isinstance(result, HttpError):
            return self._failed(item, result)
        self.consecutive_failures = 0
        self.queue.done(item.source_id)
        outcome = self.writer.accept(result)
        if outcome == "written":
            self.written += 1
            if self.progress is not None:
                self.progress.update(1)
        return outcome

    def _failed(self, cand: Candidate, exc: HttpError) -> str:
        reason = exc.reason or "failed"
        log.warning("download failed (%s): %s", reason, self.client.redact(str(exc)))
        if exc.status in GONE_STATUS:
            self.queue.done(cand.source_id)
            self.writer.count(f"download-{reason}")
            return f"download-{reason}"
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.policy.block_after:
            self.blocked = reason
        if self.queue.fail(cand, reason, exc.retry_after):
            return "deferred"
        self.writer.count(f"download-{reason}")
        return f"download-{reason}"
