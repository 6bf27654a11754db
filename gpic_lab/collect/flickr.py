"""Flickr API source: flickr.photos.search by license ids and upload/taken date ranges, one size variant, paged.

The API key comes from $FLICKR_API_KEY (never from arguments shown in logs or notebooks). Results are sorted by
upload date ascending inside a fixed upload window (max_upload_date defaults to the time of the first run and is
stored with the query), so page N stays page N while new photos are uploaded and a resumed run sees the same pages.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from gpic_lab.collect.base import Candidate, Page, strip_html
from gpic_lab.collect.http import BadApiKey, HttpClient
from gpic_lab.core.licenses import FLICKR_LICENSES, FLICKR_PERMISSIVE_IDS
from gpic_lab.errors import GpicError, UsageError

FLICKR_API = "https://api.flickr.com/services/rest/"
API_KEY_ENV = "FLICKR_API_KEY"
# size suffixes from small to large (https://www.flickr.com/services/api/misc.urls.html)
SIZES = ("sq", "t", "s", "q", "m", "n", "w", "z", "c", "l", "h", "k", "3k", "4k", "f", "5k", "6k", "o")
BAD_KEY_CODES = (100,)  # "Invalid API Key"


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


class FlickrSource:
    """flickr.photos.search pages. Cursor: the page number (1-based)."""

    name = "flickr"

    def __init__(self, client: HttpClient, api_key: str, base_url: str = FLICKR_API,
                 license_ids: tuple[int, ...] = FLICKR_PERMISSIVE_IDS, min_upload_date: str | None = None,
                 max_upload_date: str | None = None, min_taken_date: str | None = None,
                 max_taken_date: str | None = None, text: str | None = None, tags: str | None = None,
                 size: str = "c", per_page: int = 100) -> None:
        if size not in SIZES:
            raise UsageError(f"size {size!r} is not a Flickr size suffix: {', '.join(SIZES)}")
        if not 1 <= per_page <= 500:
            raise UsageError(f"per_page must be 1..500, got {per_page}")
        if not api_key:
            raise UsageError(f"no Flickr API key: set the {API_KEY_ENV} environment variable")
        self.client, self.base_url, self.size, self.per_page = client, base_url, size, per_page
        self._key = api_key
        client.secrets = tuple({*client.secrets, api_key})
        max_up = _date(max_upload_date, "max_upload_date") or str(int(dt.datetime.now(dt.UTC).timestamp()))
        self.filters = {"license": ",".join(str(i) for i in license_ids),
                        "min_upload_date": _date(min_upload_date, "min_upload_date"), "max_upload_date": max_up,
                        "min_taken_date": _date(min_taken_date, "min_taken_date"),
                        "max_taken_date": _date(max_taken_date, "max_taken_date"), "text": text, "tags": tags}

    def query(self) -> dict[str, Any]:
        """The search as stored in the collection state (never the key)."""
        return {"source": self.name, "size": self.size, "per_page": self.per_page,
                **{k: v for k, v in self.filters.items() if v is not None}}

    def first_cursor(self) -> int:
        return 1

    def restore(self, query: dict[str, Any]) -> None:
        """Reuse the stored upload window on resume (the default max_upload_date is 'now' at the first run)."""
        self.filters["max_upload_date"] = query.get("max_upload_date", self.filters["max_upload_date"])

    def _extras(self) -> str:
        """license, owner, original dims and the URLs of the chosen size and every smaller one (the fallbacks)."""
        sizes = SIZES[: SIZES.index(self.size) + 1]
        return ",".join(["license", "owner_name", "o_dims", "date_upload", *(f"url_{s}" for s in sizes)])

    def fetch(self, cursor: Any) -> Page:
        page = int(cursor or 1)
        params = {"method": "flickr.photos.search", "api_key": self._key, "format": "json", "nojsoncallback": 1,
                  "extras": self._extras(), "sort": "date-posted-asc", "per_page": self.per_page, "page": page,
                  "content_type": 1, "media": "photos",
                  **{k: v for k, v in self.filters.items() if v is not None}}
        data = self.client.get(self.base_url, params, parse_json=True)
        if not isinstance(data, dict) or data.get("stat") != "ok":
            code = data.get("code") if isinstance(data, dict) else None
            message = self.client.redact(str(data.get("message", "")) if isinstance(data, dict) else repr(data)[:200])
            if code in BAD_KEY_CODES:
                raise BadApiKey(f"Flickr rejected the API key from ${API_KEY_ENV} (code {code}: {message})")
            raise GpicError(f"Flickr API error on page {page} (code {code}): {message}")
        photos = data.get("photos") or {}
        items: list[Candidate | str] = [self._candidate(p) for p in photos.get("photo", [])]
        pages = int(photos.get("pages") or 0)
        return Page(items, page + 1 if page < pages else None, int(photos.get("total") or 0))

    def _candidate(self, p: dict[str, Any]) -> Candidate | str:
        """The chosen size, else the largest smaller one; a reason string when no variant is available."""
        order = SIZES[: SIZES.index(self.size) + 1][::-1]
        suffix = next((s for s in order if p.get(f"url_{s}")), None)
        if suffix is None:
            return "size-unavailable"
        try:
            lic = FLICKR_LICENSES[int(p.get("license", -1))]
        except (KeyError, ValueError):
            return "license-unknown"
        owner = str(p.get("owner", ""))
        return Candidate(
            source=self.name, source_id=str(p.get("id", "")), image_url=str(p[f"url_{suffix}"]),
            page_url=f"https://www.flickr.com/photos/{owner}/{p.get('id', '')}",
            author=strip_html(p.get("ownername")) or owner, title=strip_html(p.get("title")),
            license_name=lic[0], license_url=lic[1],
            width=_int(p.get(f"width_{suffix}")), height=_int(p.get(f"height_{suffix}")))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
