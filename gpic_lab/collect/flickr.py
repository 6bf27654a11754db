"""Flickr API source: flickr.photos.search by license ids and an upload-date range, walked in upload-date windows
(see gpic_lab.collect.windows: Flickr lists at most 4,000 results per query), one size variant per photo.

The API key comes from $FLICKR_API_KEY (never from arguments shown in logs or notebooks). The upload range defaults
to Flickr's launch .. the time of the first run (stored with the query), so a resumed run walks the same windows.
Transient API errors inside a 200 answer (codes 10, 105, 106) are retried like HTTP 5xx; code 3 (parameterless
search) is a usage error; code 100 (bad key) exits 2.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from typing import Any

from gpic_lab.collect import windows
from gpic_lab.collect.base import Candidate, Page, Skip, strip_html
from gpic_lab.collect.http import BadApiKey, HttpClient, Retryable
from gpic_lab.core.licenses import FLICKR_LICENSES, FLICKR_PERMISSIVE_IDS
from gpic_lab.errors import GpicError, UsageError

FLICKR_API = "https://api.flickr.com/services/rest/"
API_KEY_ENV = "FLICKR_API_KEY"
# extras size name -> (URL suffix, longest side in px, square crop); https://www.flickr.com/services/api/misc.urls.html
# The extras names are not the URL suffixes: extras "s" is the 240 px "Small" (URL suffix m), extras "m" the 500 px
# "Medium" (no suffix), extras "l" the 1024 px "Large" (URL suffix b); "sq" and "q" are square crops. "f" is 4096 px on
# the long side of 2:1 panoramas. "o" is the original (size from o_dims; owners can withhold it).
SIZE_TABLE: dict[str, tuple[str, int | None, bool]] = {
    "sq": ("s", 75, True), "q": ("q", 150, True), "t": ("t", 100, False), "s": ("m", 240, False),
    "n": ("n", 320, False), "w": ("w", 400, False), "m": ("", 500, False), "z": ("z", 640, False),
    "c": ("c", 800, False), "l": ("b", 1024, False), "h": ("h", 1600, False), "k": ("k", 2048, False),
    "3k": ("3k", 3072, False), "4k": ("4k", 4096, False), "f": ("f", 4096, False), "5k": ("5k", 5120, False),
    "6k": ("6k", 6144, False), "o": ("o", None, False),
}
# uncropped sizes, smallest first: the only ones ever collected
SIZES = tuple(name for name, (_s, _px, crop) in SIZE_TABLE.items() if not crop)
# OUR CHOICE: GPIC's mean image is 479 x 587 (H x W); extras "z" (640 px on the long side) is the nearest size class.
DEFAULT_SIZE = "z"
# OUR ASSUMPTION: Flickr launched in February 2004; the default upload range starts there.
FLICKR_EPOCH = "2004-02-01"
BAD_KEY_CODES = (100,)  # "Invalid API Key"
TRANSIENT_CODES = {10: "flickr-10", 105: "flickr-105", 106: "flickr-106"}  # search unavailable, service unavailable,
# write operation failed: documented as temporary
PARAMETERLESS_CODE = 3
OFFSET_CODE = 20  # "Excessive photo offset in search" (past the 4,000-result cap)


def api_key_from_env(var: str = API_KEY_ENV) -> str:
    """The API key from the environment; UsageError naming the variable when it is unset."""
    key = os.environ.get(var, "").strip()
    if not key:
        raise UsageError(f"no Flickr API key: set the {var} environment variable")
    return key


def parse_license_ids(text: str | None) -> tuple[int, ...]:
    """'4,9,10' -> (4, 9, 10); None/'' -> GPIC's permissive ids; unknown ids are a UsageError."""
    if not text:
        return FLICKR_PERMISSIVE_IDS
    try:
        ids = tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise UsageError(f"license ids must be integers like 4,9,10, got {text!r}") from None
    bad = [i for i in ids if i not in FLICKR_LICENSES]
    if bad or not ids:
        raise UsageError(f"unknown Flickr license id(s) {bad or text!r}: valid ids are 0-16")
    return ids


def check_size(size: str) -> str:
    """A --size value: an uncropped extras size name; UsageError naming the mix-ups (URL suffix b, crops)."""
    if size == "b":
        raise UsageError("size 'b' is the URL suffix of the 1024 px size; its extras name is 'l'")
    if size in SIZE_TABLE and SIZE_TABLE[size][2]:
        raise UsageError(f"size {size!r} is a square crop; choose an uncropped size: {', '.join(SIZES)}")
    if size not in SIZE_TABLE:
        raise UsageError(f"size {size!r} is not a Flickr extras size name: {', '.join(SIZES)}")
    return size


def _date(value: str | None, name: str) -> str | None:
    """A date parameter as a unix timestamp string (Flickr accepts both); UsageError when unreadable."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return text
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: expected an ISO date (2020-01-31) or unix time, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return str(int(when.timestamp()))


def _check(data: Any, _headers: dict[str, str]) -> None:
    """Raise Retryable for Flickr's documented temporary errors (they arrive as HTTP 200, stat=fail)."""
    if isinstance(data, dict) and data.get("stat") == "fail" and _int(data.get("code")) in TRANSIENT_CODES:
        raise Retryable(TRANSIENT_CODES[int(data["code"])])


class FlickrSource:
    """flickr.photos.search in upload-date windows. Cursor: see gpic_lab.collect.windows."""

    name = "flickr"

    def __init__(self, client: HttpClient, api_key: str, base_url: str = FLICKR_API,
                 license_ids: tuple[int, ...] = FLICKR_PERMISSIVE_IDS, min_upload_date: str | None = None,
                 max_upload_date: str | None = None, min_taken_date: str | None = None,
                 max_taken_date: str | None = None, text: str | None = None, tags: str | None = None,
                 size: str = DEFAULT_SIZE, per_page: int = 500, split_total: int = windows.SPLIT_TOTAL) -> None:
        check_size(size)
        if not 1 <= per_page <= 500:
            raise UsageError(f"per_page must be 1..500, got {per_page}")
        if not api_key:
            raise UsageError(f"no Flickr API key: set the {API_KEY_ENV} environment variable")
        self.client, self.base_url, self.size, self.per_page = client, base_url, size, per_page
        self.split_total = split_total
        self._key = api_key
        client.secrets = tuple({*client.secrets, api_key})
        max_up = _date(max_upload_date, "max_upload_date") or str(int(dt.datetime.now(dt.UTC).timestamp()))
        self.filters = {"license": ",".join(str(i) for i in license_ids),
                        "min_upload_date": _date(min_upload_date or FLICKR_EPOCH, "min_upload_date"),
                        "max_upload_date": max_up, "min_taken_date": _date(min_taken_date, "min_taken_date"),
                        "max_taken_date": _date(max_taken_date, "max_taken_date"), "text": text, "tags": tags}

    def query(self) -> dict[str, Any]:
        """The search as stored in the collection state (never the key)."""
        return {"source": self.name, "size": self.size, "per_page": self.per_page,
                **{k: v for k, v in self.filters.items() if v is not None}}

    def first_cursor(self) -> dict[str, Any]:
        f = self.filters
        return windows.start(int(f["min_upload_date"]), int(f["max_upload_date"]), f["license"])

    def restore(self, query: dict[str, Any]) -> None:
        """Reuse the stored upload range on resume (the default max_upload_date is 'now' at the first run)."""
        self.filters["max_upload_date"] = query.get("max_upload_date", self.filters["max_upload_date"])

    def _extras(self) -> str:
        """license, owner, upload time, original dims and the URLs of every uncropped size up to the chosen one."""
        sizes = SIZES[: SIZES.index(self.size) + 1]
        if "o" not in sizes:
            sizes = (*sizes, "o")  # the original is taken when o_dims shows it is not above the chosen size
        return ",".join(["license", "owner_name", "o_dims", "date_upload", *(f"url_{s}" for s in sizes)])

    def _search(self, cursor: dict[str, Any]) -> dict[str, Any] | None:
        """One search request for the cursor; None when Flickr refuses the offset (error 20)."""
        fixed = {k: v for k, v in self.filters.items() if v is not None and k not in ("license", "min_upload_date",
                                                                                      "max_upload_date")}
        params = {"method": "flickr.photos.search", "api_key": self._key, "format": "json", "nojsoncallback": 1,
                  "extras": self._extras(), "sort": "date-posted-asc", "per_page": self.per_page,
                  "content_type": 1, "media": "photos", **fixed, **windows.request_range(cursor)}
        data = self.client.get(self.base_url, params, parse_json=True, check=_check)
        if isinstance(data, dict) and data.get("stat") == "ok":
            return data
        code = _int(data.get("code")) if isinstance(data, dict) else None
        message = self.client.redact(str(data.get("message", "")) if isinstance(data, dict) else repr(data)[:200])
        if code in BAD_KEY_CODES:
            raise BadApiKey(f"Flickr rejected the API key from ${API_KEY_ENV} (code {code}: {message})")
        if code == PARAMETERLESS_CODE:
            raise UsageError(f"Flickr refused a parameterless search (code 3: {message}); give an upload or taken "
                             f"date range, --text or --tags")
        if code == OFFSET_CODE:
            return None
        raise GpicError(f"Flickr API error (code {code}): {message}")

    def fetch(self, cursor: Any) -> Page:
        """One search request: a page of candidates, or an empty page when the window was split or capped."""
        cursor = copy.deepcopy(cursor)
        data = self._search(cursor)
        if data is None:  # error 20: the walk went past the result cap inside one upload second
            return Page([], windows.next_window(cursor), extra={"capped": 1})
        photos = data.get("photos") or {}
        total = _int(photos.get("total")) or 0  # Flickr sends total as a string
        if not windows.current(cursor)["sized"]:
            parts = windows.sized(cursor, total, self.split_total)
            if parts is not None:
                return Page([], parts, total, extra={"split": 1})
        rows = [p for p in photos.get("photo") or [] if isinstance(p, dict)]
        uploads = [u for u in (_int(p.get("dateupload")) for p in rows) if u is not None]
        if len(uploads) != len(rows):  # the keyset walk needs every upload time; never skip silently
            raise GpicError("Flickr answered photos without dateupload (extras=date_upload was requested)")
        nxt, capped = windows.advance(cursor, uploads, _int(photos.get("pages")) or 0, self.per_page)
        return Page([self._candidate(p) for p in rows], nxt, total, extra={"capped": int(capped)})

    def _pick(self, p: dict[str, Any]) -> str | None:
        """The largest uncropped size listed for the photo that is not above the chosen one (never a crop)."""
        limit = SIZE_TABLE[self.size][1]
        best, best_px = None, -1
        # the original first: of equal sizes it is the one not re-encoded
        for name in ("o", *SIZES[: SIZES.index(self.size) + 1][::-1]):
            if not p.get(f"url_{name}"):
                continue
            px = _longest(p, name)
            if name == "o" and self.size != "o" and (px is None or limit is None or px > limit):
                continue  # an original of unknown or larger size than asked for
            px = px if px is not None else (SIZE_TABLE[name][1] or 10**9)
            if px > best_px:
                best, best_px = name, px
        return best

    def _candidate(self, p: dict[str, Any]) -> Candidate | Skip:
        """The chosen size, else the largest smaller uncropped one; a Skip when no variant is available."""
        pid = str(p.get("id", ""))
        name = self._pick(p)
        if name is None:
            return Skip(pid, "size-unavailable")
        try:
            lic = FLICKR_LICENSES[int(p.get("license", -1))]
        except (KeyError, ValueError):
            return Skip(pid, "license-unknown")
        owner = str(p.get("owner", ""))
        return Candidate(
            source=self.name, source_id=pid, image_url=str(p[f"url_{name}"]),
            page_url=f"https://www.flickr.com/photos/{owner}/{pid}",
            author=strip_html(p.get("ownername")) or owner, title=strip_html(p.get("title")),
            license_name=lic[0], license_url=lic[1],
            width=_int(p.get(f"width_{name}")), height=_int(p.get(f"height_{name}")), flags={"size": name})


def _longest(p: dict[str, Any], name: str) -> int | None:
    """The longest side of a listed size from width_/height_ (o_width/o_height for the original)."""
    w, h = (p.get("o_width"), p.get("o_height")) if name == "o" else (p.get(f"width_{name}"), p.get(f"height_{name}"))
    w, h = _int(w) or _int(p.get(f"width_{name}")), _int(h) or _int(p.get(f"height_{name}"))
    return max(w, h) if w and h else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
