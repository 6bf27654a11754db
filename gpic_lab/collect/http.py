"""A small HTTP client for API collection: request budget, rate limit, retries with exponential backoff + jitter.

Retried: 429 (waits Retry-After when given), 500/502/503/504, timeouts, connection resets, truncated bodies
(fewer bytes than Content-Length) and, for JSON calls, malformed JSON. Not retried: other 4xx. Secrets (API
keys) are redacted from every message and log line. Every attempt counts against the budget.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gpic_lab.errors import GpicError

log = logging.getLogger("gpic_lab.collect")
USER_AGENT = "gpic-lab-collect/0.1 (GPIC research corpus tooling; set --user-agent with a contact address)"
RETRY_STATUS = (429, 500, 502, 503, 504)


class BudgetExhausted(GpicError):
    """The request budget is spent; collection stops cleanly and can be resumed with a new budget."""


class HttpError(GpicError):
    """A request failed for good (non-retryable status or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class BadApiKey(GpicError):
    """The API rejected the key (exit 2: fix the environment variable)."""

    exit_code = 2


@dataclass
class ClientStats:
    """Counters of one client: attempts, retries by reason, waits, bytes, hosts contacted."""

    requests: int = 0
    retries: Counter = field(default_factory=Counter)
    waited_s: float = 0.0
    bytes: int = 0
    hosts: set = field(default_factory=set)
    retry_after: list = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": dict(self.retries), "waited_s": round(self.waited_s, 3),
                "bytes": self.bytes, "hosts": sorted(self.hosts)}


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait, self.status = reason, wait, status


class HttpClient:
    """GET with a request budget, a rate limit (requests/s), and retries with exponential backoff + full jitter.

    Args:
        budget: max HTTP attempts (None: unlimited); BudgetExhausted when spent.
        rate: max requests per second (None/0: unlimited).
        retries: retries per request after the first attempt.
        timeout: socket timeout in seconds.
        backoff: base delay; attempt n waits uniform(0, min(backoff_cap, backoff * 2**n)).
        max_retry_after: a Retry-After longer than this is an error rather than a wait.
        secrets: strings redacted from messages and logs (API keys).
        user_agent: User-Agent header (Wikimedia asks for a contact address in it).
        seed: jitter RNG seed (reproducible tests).
    """

    def __init__(self, budget: int | None = None, rate: float | None = None, retries: int = 5,
                 timeout: float = 30.0, backoff: float = 0.5, backoff_cap: float = 60.0,
                 max_retry_after: float = 300.0, secrets: tuple[str, ...] = (), seed: int | None = None,
                 user_agent: str = USER_AGENT) -> None:
        if budget is not None and budget < 0:
            raise GpicError(f"budget must be >= 0, got {budget}")
        self.budget, self.rate, self.retries, self.timeout = budget, rate, retries, timeout
        self.backoff, self.backoff_cap, self.max_retry_after = backoff, backoff_cap, max_retry_after
        self.secrets = tuple(s for s in secrets if s)
        self.stats = ClientStats()
        self._rng = random.Random(seed)
        self._last = 0.0
        self.user_agent = user_agent

    def redact(self, text: str) -> str:
        """Text with every secret (also URL-encoded) replaced by ***."""
        for secret in self.secrets:
            text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
        return text

    def _throttle(self) -> None:
        if self.budget is not None and self.stats.requests >= self.budget:
            raise BudgetExhausted(f"request budget of {self.budget} spent")
        if self.rate:
            wait = self._last + 1.0 / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
                self.stats.waited_s += wait
        self._last = time.monotonic()
        self.stats.requests += 1

    def _attempt(self, url: str) -> tuple[bytes, dict[str, str]]:
        self._throttle()
        host = urllib.parse.urlsplit(url).hostname or ""
        self.stats.hosts.add(host)
        req = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (http/https only)
                headers = {k.lower(): v for k, v in resp.headers.items()}
                body = resp.read()
                expected = headers.get("content-length")
                if expected is not None and expected.isdigit() and len(body) != int(expected):
                    raise _Retry("truncated-body")
        except urllib.error.HTTPError as exc:
            if exc.code in RETRY_STATUS:
                wait = _retry_after(exc.headers.get("Retry-After")) if exc.code in (429, 503) else None
                raise _Retry(f"http-{exc.code}", wait, exc.code) from None
            raise HttpError(f"HTTP {exc.code} for {self.redact(url)}", exc.code, f"http-{exc.code}") from None
        except TimeoutError:
            raise _Retry("timeout") from None
        except http.client.IncompleteRead:
            raise _Retry("truncated-body") from None
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
            raise _Retry("connection-error") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retry("timeout") from None
            if isinstance(exc.reason, ConnectionError):
                raise _Retry("connection-error") from None
            raise HttpError(f"cannot reach {self.redact(url)}: {exc.reason}", None, "unreachable") from None
        self.stats.bytes += len(body)
        return body, headers

    def _delay(self, attempt: int, retry: _Retry) -> float:
        if retry.wait is not None:
            if retry.wait > self.max_retry_after:
                raise HttpError(f"server asked to wait {retry.wait:.0f}s (> max {self.max_retry_after:.0f}s)",
                                retry.status, retry.reason)
            self.stats.retry_after.append(retry.wait)
            return retry.wait
        return self._rng.uniform(0, min(self.backoff_cap, self.backoff * 2 ** attempt))

    def get(self, url: str, params: dict[str, Any] | None = None, parse_json: bool = False) -> Any:
        """GET url (+ params): bytes, or the decoded JSON with parse_json (malformed JSON is retried)."""
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"
        last: _Retry | None = None
        for attempt in range(self.retries + 1):
            try:
                body, _headers = self._attempt(url)
                if not parse_json:
                    return body
                try:
                    return json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise _Retry("malformed-json") from None
            except _Retry as retry:
                last = retry
                self.stats.retries[retry.reason] += 1
                if attempt == self.retries:
                    break
                delay = self._delay(attempt, retry)
                log.info("retry %d/%d after %s in %.2fs: %s", attempt + 1, self.retries, retry.reason, delay,
                         self.redact(url))
                time.sleep(delay)
                self.stats.waited_s += delay
        assert last is not None
        raise HttpError(f"{last.reason} after {self.retries + 1} attempts: {self.redact(url)}", last.status,
                        last.reason)


def _retry_after(value: str | None) -> float | None:
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
