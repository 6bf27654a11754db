"""Thread-safe request limits for collection: a request-rate limiter, a byte-rate (bandwidth) token bucket and
per-host concurrency slots.

API calls and image downloads get separate limits (`Limits`): the APIs limit calls per key or client (Flickr: 3,600
calls/hour per key), media hosts limit concurrency and bandwidth (Wikimedia's robot policy for
upload.wikimedia.org: at most 2 concurrent downloads and 25 Mbps measured over 10 s), and one image per API call
would make a 1M-image collection take 11.6 days at one call per second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

WIKIMEDIA_MEDIA_CONCURRENCY = 2  # robot policy: "a total concurrency of at most 2" on upload.wikimedia.org
WIKIMEDIA_MEDIA_MBPS = 25.0  # robot policy: "limit your total download speed to 25 Mbps"
# OUR ASSUMPTION: Flickr publishes no CDN limit; 8 concurrent downloads per host is a polite default.
FLICKR_CDN_CONCURRENCY = 8


@dataclass(frozen=True)
class Limits:
    """Request limits of one client.

    Args:
        api_rate: API calls per second (None: unlimited).
        download_rate: image downloads per second, all hosts together (None: unlimited).
        concurrency: concurrent downloads per host (>= 1).
        bandwidth_mbps: download bandwidth per host in megabits/s (None: unlimited).
    """

    api_rate: float | None = 1.0
    download_rate: float | None = None
    concurrency: int = FLICKR_CDN_CONCURRENCY
    bandwidth_mbps: float | None = None


class RateLimiter:
    """At most `rate` acquisitions per second, spaced evenly, shared by all threads (None/0: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until the next slot; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return max(0.0, wait)


class TokenBucket:
    """A byte-rate limit: `take(n)` after receiving n bytes sleeps as long as the average rate (with a burst of
    `burst_s` seconds of traffic) would exceed `bytes_per_s`. Debt carries over, so the long-run rate holds."""

    def __init__(self, bytes_per_s: float, burst_s: float = 1.0) -> None:
        self.rate, self.capacity = float(bytes_per_s), float(bytes_per_s) * burst_s
        self._tokens, self._last = self.capacity, time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> float:
        """Account n bytes; returns the seconds slept."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


class HostLimits:
    """Per-host concurrency slots and bandwidth buckets for downloads."""

    def __init__(self, concurrency: int, bandwidth_mbps: float | None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.concurrency, self.bandwidth_mbps = concurrency, bandwidth_mbps
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of the host's concurrency slots."""
        with self._lock:
            sem = self._slots.setdefault(host, threading.BoundedSemaphore(self.concurrency))
        with sem:
            yield

    def received(self, host: str, nbytes: int) -> float:
        """Account received bytes against the host's bandwidth; returns the seconds slept."""
        if not self.bandwidth_mbps:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(host)
            if bucket is None:
                bucket = self._buckets[host] = TokenBucket(self.bandwidth_mbps * 1e6 / 8)
        return bucket.take(nbytes)
