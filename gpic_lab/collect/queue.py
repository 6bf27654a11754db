"""The deferred-download queue: downloads that failed (retries exhausted, a Retry-After too long to wait inline, a
403/429 block) are kept with the time they may be retried, retried later in the run and on resume, and only
counted as failed for good after `max_tries` rounds. The queue lives in the collection state.

OUR ASSUMPTIONS (GPIC states nothing about them): a failed download is retried in up to 3 rounds; without a
Retry-After the rounds are 60 s, 120 s, 240 s apart; 404 and 410 mean the image is gone and are never deferred.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from gpic_lab.collect.base import Candidate

GONE_STATUS = (404, 410)
DEFAULT_MAX_TRIES = 3
DEFAULT_DEFER_S = 60.0


@dataclass
class Deferred:
    """One queued download: the candidate, the last failure reason, rounds tried, earliest retry (epoch s)."""

    cand: Candidate
    reason: str
    tries: int
    not_before: float

    def as_json(self) -> dict[str, Any]:
        return {"cand": self.cand.as_json(), "reason": self.reason, "tries": self.tries,
                "not_before": round(self.not_before, 3)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deferred:
        return cls(Candidate.from_json(data["cand"]), str(data["reason"]), int(data["tries"]),
                   float(data["not_before"]))


class DeferredQueue:
    """Failed downloads waiting for another round, keyed by source id (one entry per listed image).

    Args:
        max_tries: rounds (the first attempt included) before a download counts as failed for good.
        defer_s: wait before the next round when the server gave no Retry-After; doubles each round.
        time_scale: multiplies every wait (the client's test knob).
    """

    def __init__(self, entries: list[dict[str, Any]] | None = None, max_tries: int = DEFAULT_MAX_TRIES,
                 defer_s: float = DEFAULT_DEFER_S, time_scale: float = 1.0) -> None:
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.max_tries, self.defer_s, self.time_scale = max_tries, defer_s, time_scale
        self.entries: dict[str, Deferred] = {}
        for data in entries or []:
            entry = Deferred.from_json(data)
            self.entries[entry.cand.source_id] = entry

    def __len__(self) -> int:
        return len(self.entries)

    def fail(self, cand: Candidate, reason: str, retry_after: float | None = None, now: float | None = None) -> bool:
        """Record a failed round; True when the download is queued again, False when it failed for good."""
        now = time.time() if now is None else now
        previous = self.entries.pop(cand.source_id, None)
        tries = (previous.tries if previous else 0) + 1
        if tries >= self.max_tries:
            return False
        wait = retry_after if retry_after is not None else self.defer_s * 2 ** (tries - 1)
        self.entries[cand.source_id] = Deferred(cand, reason, tries, now + wait * self.time_scale)
        return True

    def done(self, source_id: str) -> None:
        """A queued download succeeded (or ended otherwise): drop it."""
        self.entries.pop(source_id, None)

    def due(self, now: float | None = None) -> list[Deferred]:
        """Entries whose wait has passed, oldest first."""
        now = time.time() if now is None else now
        return sorted((e for e in self.entries.values() if e.not_before <= now), key=lambda e: e.not_before)

    def next_due(self) -> float | None:
        """Epoch seconds of the earliest retry, None when empty."""
        return min((e.not_before for e in self.entries.values()), default=None)

    def as_json(self) -> list[dict[str, Any]]:
        return [e.as_json() for e in sorted(self.entries.values(), key=lambda e: e.cand.source_id)]

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """What is pending: count, by last failure reason, seconds until the next retry is due."""
        now = time.time() if now is None else now
        nxt = self.next_due()
        return {"count": len(self.entries), "by_reason": dict(sorted(Counter(e.reason for e in
                                                                             self.entries.values()).items())),
                "next_retry_in_s": None if nxt is None else round(max(0.0, nxt - now), 1)}
