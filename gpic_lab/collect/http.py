"""A thread-safe HTTP client for API collection: request budget, separate limits for API calls and image downloads,
retries with exponential backoff + jitter.

Retried: 429 (waits Retry-After when given), 500/502/503/504, timeouts, connection resets, truncated bodies
(fewer bytes than Content-Length), for JSON calls malformed JSON, and whatever a caller's `check` marks as
transient (an API error inside a 200 answer: Flickr code 105, Commons maxlag). Not retried: other 4xx. Secrets
(API keys) are redacted from every message and log line, also in their URL-encoded forms. Every attempt counts
against the budget. Every request says `Accept-Encoding: gzip` and gzip bodies are decoded.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpic_lab.collect.limits import HostLimits, Limits, RateLimiter
from gpic_lab.errors import GpicError

log = logging.getLogger("gpic_lab.collect")
VERSION = "0.2"
USER_AGENT = f"gpic-lab-collect/{VERSION} (GPIC research corpus tooling)"
RETRY_STATUS = (429, 500, 502, 503, 504)


class BudgetExhausted(GpicError):
    """The request budget is spent; collection stops cleanly and can be resumed with a new budget."""


class HttpError(GpicError):
    """A request failed for good (non-retryable status, retries exhausted, or a too-long Retry-After).

    retry_after: the server's last Retry-After in seconds (unscaled), when it sent one."""

    def __init__(self, message: str, status: int | None = None, reason: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.retry_after = status, reason, retry_after


class BadApiKey(GpicError):
    """The API rejected the key (exit 2: fix the environment variable)."""

    exit_code = 2


class Retryable(Exception):
    """A failed attempt worth retrying; `check` callbacks raise it for API errors inside 200 answers.

    Args:
        reason: retry reason as counted in the stats (e.g. 'http-429', 'flickr-105', 'maxlag').
        wait: seconds the server asked to wait (Retry-After), unscaled; None: exponential backoff.
    """

    def __init__(self, reason: str, wait: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait, self.status = reason, wait, status


@dataclass
class ClientStats:
    """Counters of one client: attempts by kind, retries by reason, waits, bytes, hosts contacted."""

    requests: int = 0
    by_kind: Counter = field(default_factory=Counter)
    retries: Counter = field(default_factory=Counter)
    waited_s: float = 0.0
    bytes: int = 0
    hosts: set = field(default_factory=set)
    retry_after: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def waited(self, seconds: float) -> None:
        if seconds > 0:
            with self.lock:
                self.waited_s += seconds

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.requests, "by_kind": dict(self.by_kind), "retries": dict(self.retries),
                    "waited_s": round(self.waited_s, 3), "bytes": self.bytes, "hosts": sorted(self.hosts)}


Check = Callable[[Any, dict[str, str]], None]


class HttpClient:
    """GET with a request budget, separate API / download limits, and retries with exponential backoff + jitter.

    Args:
        budget: max HTTP attempts, API calls and downloads together (None: unlimited); BudgetExhausted when spent.
        limits: API call rate, download rate, per-host download concurrency and bandwidth.
        retries: retries per request after the first attempt.
        timeout: socket timeout in seconds.
        backoff: base delay; attempt n waits uniform(0, min(backoff_cap, backoff * 2**n)).
        max_retry_after: a Retry-After longer than this (seconds, as sent) is an error rather than a wait.
        secrets: strings redacted from messages and logs (API keys).
        user_agent: User-Agent header (Wikimedia requires a contact address in it).
        seed: jitter RNG seed (reproducible tests).
        time_scale: multiplies every server-requested wait (a test knob: 0.001 turns Retry-After: 3600 into 3.6 s;
            the comparison with max_retry_after uses the unscaled value).
    """

    def __init__(self, budget: int | None = None, limits: Limits | None = None, retries: int = 5,
                 timeout: float = 30.0, backoff: float = 0.5, backoff_cap: float = 60.0,
                 max_retry_after: float = 300.0, secrets: tuple[str, ...] = (), seed: int | None = None,
                 user_agent: str = USER_AGENT, time_scale: float = 1.0) -> None:
        if budget is not None and budget < 0:
            raise GpicError(f"budget must be >= 0, got {budget}")
        self.limits = limits or Limits()
        self.budget, self.retries, self.timeout = budget, retries, timeout
        self.backoff, self.backoff_cap, self.max_retry_after = backoff, backoff_cap, max_retry_after
        self.secrets = tuple(s for s in secrets if s)
        self.stats = ClientStats()
        self.user_agent, self.time_scale = user_agent, time_scale
        self._rng = random.Random(seed)
        self._api_rate = RateLimiter(self.limits.api_rate)
        self._download_rate = RateLimiter(self.limits.download_rate)
        self.host_limits = HostLimits(self.limits.concurrency, self.limits.bandwidth_mbps)

    @property
    def rate(self) -> float | None:
        """The API call rate (calls/s)."""
        return self.limits.api_rate

    def redact(self, text: str) -> str:
        """Text with every secret replaced by ***, also its quote and quote_plus (query string) forms."""
        for secret in self.secrets:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
                text = text.replace(form, "***")
        return text

    def _count_attempt(self, kind: str, url: str) -> None:
        with self.stats.lock:
            if self.budget is not None and self.stats.requests >= self.budget:
                raise BudgetExhausted(f"request budget of {self.budget} spent")
            self.stats.requests += 1
            self.stats.by_kind[kind] += 1
            self.stats.hosts.add(urllib.parse.urlsplit(url).hostname or "")

    def _attempt(self, url: str, kind: str) -> tuple[bytes, dict[str, str]]:
        if kind == "api":
            self.stats.waited(self._api_rate.acquire())
            self._count_attempt(kind, url)
            return self._open(url)
        host = urllib.parse.urlsplit(url).netloc  # host:port, the unit of download concurrency and bandwidth
        with self.host_limits.slot(host):
            self.stats.waited(self._download_rate.acquire())
            self._count_attempt(kind, url)
            body, headers = self._open(url)
            self.stats.waited(self.host_limits.received(host, len(body)))
        return body, headers

    def _open(self, url: str) -> tuple[bytes, dict[str, str]]:
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (http/https only)
                headers = {k.lower(): v for k, v in resp.headers.items()}
                body = resp.read()
                expected = headers.get("content-length")
                if expected is not None and expected.isdigit() and len(body) != int(expected):
                    raise Retryable("truncated-body")
        except urllib.error.HTTPError as exc:
            if exc.code in RETRY_STATUS:
                wait = retry_after(exc.headers.get("Retry-After")) if exc.code in (429, 503) else None
                raise Retryable(f"http-{exc.code}", wait, exc.code) from None
            raise HttpError(f"HTTP {exc.code} for {self.redact(url)}", exc.code, f"http-{exc.code}") from None
        except TimeoutError:
            raise Retryable("timeout") from None
        except http.client.IncompleteRead:
            raise Retryable("truncated-body") from None
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
            raise Retryable("connection-error") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise Retryable("timeout") from None
            if isinstance(exc.reason, ConnectionError):
                raise Retryable("connection-error") from None
            raise HttpError(f"cannot reach {self.redact(url)}: {exc.reason}", None, "unreachable") from None
        with self.stats.lock:
            self.stats.bytes += len(body)
        if headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                raise Retryable("truncated-body") from None
        return body, headers

    def _delay(self, attempt: int, retry: Retryable) -> float:
        if retry.wait is not None:
            if retry.wait > self.max_retry_after:
                raise HttpError(f"server asked to wait {retry.wait:.0f}s (> max {self.max_retry_after:.0f}s)",
                                retry.status, retry.reason, retry.wait)
            with self.stats.lock:
                self.stats.retry_after.append(retry.wait)
            return retry.wait * self.time_scale
        with self.stats.lock:
            return self._rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** attempt))

    def get(self, url: str, params: dict[str, Any] | None = None, parse_json: bool = False, kind: str = "api",
            check: Check | None = None) -> Any:
        """GET url (+ params): bytes, or the decoded JSON with parse_json (malformed JSON is retried).

        Args:
            kind: 'api' (the API call rate) or 'download' (download rate, per-host concurrency and bandwidth).
            check: called with (decoded JSON, lower-cased headers); raises Retryable for a transient API error.
        """
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
        last: Retryable | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._once(url, kind, parse_json, check)
            except Retryable as retry:
                last = retry
                with self.stats.lock:
                    self.stats.retries[retry.reason] += 1
                if attempt == self.retries:
                    break
                delay = self._delay(attempt, retry)
                log.info("retry %d/%d after %s in %.2fs: %s", attempt + 1, self.retries, retry.reason, delay,
                         self.redact(url))
                time.sleep(delay)
                self.stats.waited(delay)
        assert last is not None
        raise HttpError(f"{last.reason} after {self.retries + 1} attempts: {self.redact(url)}", last.status,
                        last.reason, last.wait)

    def _once(self, url: str, kind: str, parse_json: bool, check: Check | None) -> Any:
        body, headers = self._attempt(url, kind)
        if not parse_json:
            return body
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Retryable("malformed-json") from None
        if check is not None:
            check(data, headers)
        return data


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())

