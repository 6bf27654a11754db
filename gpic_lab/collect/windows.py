"""Upload-date windows for Flickr search: Flickr returns at most the first 4,000 results of any query (beyond them it
repeats pages or answers error 20 "Excessive photo offset in search"), so a large search is cut into windows whose
`total` is under SPLIT_TOTAL, walked one after the other.

A window is {"lo", "hi", "lic", "sized", "total"}: an inclusive upload-date range in unix seconds (Flickr's
min_upload_date / max_upload_date are inclusive), a comma-separated license id list, and whether its total was
checked. Splitting halves the date range; a one-second window is split by license ids instead.

Inside a window the walk is keyset-based, not offset-based: with sort=date-posted-asc, the next request starts at
the largest upload time seen so far (`after`, inclusive) and asks for page 1 again. Photos at that boundary second
come back and are recognised by id, so pages that shift between requests (deletions, re-licensing, unstable
ordering of equal upload times) neither skip nor repeat photos, and a resumed run continues from the same
timestamp. Only when a whole page shares one upload second does the walk page forward (`page`) within it.

The cursor stored in the collection state: {"windows": [window, ...], "after": int | None, "page": int}.
"""

from __future__ import annotations

from typing import Any

RESULT_CAP = 4000  # Flickr: "at most the first 4,000 results for any given search query"
# OUR ASSUMPTION: ~3,000 leaves headroom under the cap for totals that grow while a window is walked.
SPLIT_TOTAL = 3000


def window(lo: int, hi: int, lic: str) -> dict[str, Any]:
    """A fresh (not yet sized) window."""
    return {"lo": int(lo), "hi": int(hi), "lic": lic, "sized": False, "total": None}


def start(lo: int, hi: int, lic: str) -> dict[str, Any]:
    """The first cursor of a search over [lo, hi] with license ids `lic`."""
    return {"windows": [window(lo, hi, lic)], "after": None, "page": 1}


def current(cursor: dict[str, Any]) -> dict[str, Any]:
    return cursor["windows"][0]


def request_range(cursor: dict[str, Any]) -> dict[str, Any]:
    """The search parameters of the cursor's next request: min/max upload date, license ids, page."""
    win = current(cursor)
    lo = win["lo"] if cursor["after"] is None else cursor["after"]
    return {"min_upload_date": str(lo), "max_upload_date": str(win["hi"]), "license": win["lic"],
            "page": int(cursor["page"])}


def split(win: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Two halves of a window (by time; a one-second window by license ids), or None when it cannot be split."""
    if win["hi"] > win["lo"]:
        mid = (win["lo"] + win["hi"]) // 2
        return [window(win["lo"], mid, win["lic"]), window(mid + 1, win["hi"], win["lic"])]
    ids = [x for x in win["lic"].split(",") if x]
    if len(ids) > 1:
        half = len(ids) // 2
        return [window(win["lo"], win["hi"], ",".join(ids[:half])), window(win["lo"], win["hi"], ",".join(ids[half:]))]
    return None


def sized(cursor: dict[str, Any], total: int, split_total: int = SPLIT_TOTAL) -> dict[str, Any] | None:
    """After the first request of an unsized window: the cursor with that window split when its total is too
    large (the answer's photos are then not used), else None (the window is marked sized and walked)."""
    win = current(cursor)
    if total > split_total:
        parts = split(win)
        if parts:
            return {"windows": [*parts, *cursor["windows"][1:]], "after": None, "page": 1}
    win["sized"], win["total"] = True, int(total)
    return None


def next_window(cursor: dict[str, Any]) -> dict[str, Any] | None:
    """The cursor of the next window (None when it was the last one)."""
    rest = cursor["windows"][1:]
    return {"windows": rest, "after": None, "page": 1} if rest else None


def advance(cursor: dict[str, Any], uploads: list[int], pages: int, per_page: int,
            cap: int = RESULT_CAP) -> tuple[dict[str, Any] | None, bool]:
    """The cursor after a page with upload times `uploads` (of a sub-query answering `pages` pages).

    Returns (next cursor, capped): capped is True when a run of photos sharing one upload second reached Flickr's
    result cap, so the rest of that second cannot be listed (the walk moves on)."""
    page = int(cursor["page"])
    if not uploads or page >= pages:
        return next_window(cursor), False
    lo = current(cursor)["lo"] if cursor["after"] is None else cursor["after"]
    top = max(uploads)
    if top > lo:
        return {**cursor, "after": top, "page": 1}, False
    if (page + 1) * per_page > cap:
        return next_window(cursor), True
    return {**cursor, "page": page + 1}, False
