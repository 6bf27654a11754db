"""Wikimedia Commons API source: generator=allimages or generator=categorymembers + prop=imageinfo
(iiprop=url|size|extmetadata|sha1|mime), following the API's `continue` tokens. No key is needed."""

from __future__ import annotations

from typing import Any

from gpic_lab.collect.base import Candidate, Page, strip_html
from gpic_lab.collect.http import HttpClient
from gpic_lab.errors import GpicError, UsageError

COMMONS_API = "https://commons.wikimedia.org/w/api.php"
IMAGE_MIMES = ("image/jpeg", "image/png")
EXTMETA = "LicenseShortName|LicenseUrl|Artist|Credit|ObjectName|UsageTerms"


class CommonsSource:
    """Commons file listing. Cursor: the API's `continue` object ({} for the first page)."""

    name = "wikimedia"

    def __init__(self, client: HttpClient, base_url: str = COMMONS_API, category: str | None = None,
                 start: str | None = None, limit: int = 50, thumb_width: int | None = None) -> None:
        if not 1 <= limit <= 500:
            raise UsageError(f"limit must be 1..500, got {limit}")
        if thumb_width is not None and thumb_width < 1:
            raise UsageError(f"thumb_width must be positive, got {thumb_width}")
        self.client, self.base_url, self.limit, self.thumb_width = client, base_url, limit, thumb_width
        self.category = category.removeprefix("Category:") if category else None
        self.start = start

    def query(self) -> dict[str, Any]:
        return {"source": self.name, "category": self.category, "start": self.start, "limit": self.limit,
                "thumb_width": self.thumb_width}

    def first_cursor(self) -> dict[str, Any]:
        return {}

    def restore(self, query: dict[str, Any]) -> None:
        """Nothing time-dependent to restore."""

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"action": "query", "format": "json", "formatversion": 2, "prop": "imageinfo",
                                  "iiprop": "url|size|extmetadata|sha1|mime", "iiextmetadatafilter": EXTMETA}
        if self.thumb_width:
            params["iiurlwidth"] = self.thumb_width
        if self.category:
            params.update(generator="categorymembers", gcmtitle=f"Category:{self.category}", gcmtype="file",
                          gcmlimit=self.limit)
        else:
            params.update(generator="allimages", gailimit=self.limit, gaisort="name")
            if self.start:
                params["gaifrom"] = self.start
        return params

    def fetch(self, cursor: Any) -> Page:
        params = {**self._params(), **(cursor or {})}
        data = self.client.get(self.base_url, params, parse_json=True)
        if not isinstance(data, dict):
            raise GpicError(f"Commons API returned {type(data).__name__}, expected an object")
        if "error" in data:
            err = data["error"]
            raise GpicError(f"Commons API error {err.get('code', '?')}: {err.get('info', '')}")
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1 shape
            pages = list(pages.values())
        pages = sorted(pages, key=lambda p: str(p.get("title", "")))
        items = [self._candidate(p) for p in pages]
        more = data.get("continue")
        return Page(items, dict(more) if more else None)

    def _candidate(self, page: dict[str, Any]) -> Candidate | str:
        infos = page.get("imageinfo") or []
        if not infos:
            return "imageinfo-missing"
        info = infos[0]
        thumb = bool(self.thumb_width and info.get("thumburl"))
        url = info.get("thumburl") if thumb else info.get("url")
        mime = str(info.get("thumbmime") or info.get("mime") or "") if thumb else str(info.get("mime", ""))
        if not url:
            return "imageinfo-missing"
        if mime and mime not in IMAGE_MIMES:
            return "unsupported-mime"
        meta = info.get("extmetadata") or {}

        def value(name: str) -> str:
            entry = meta.get(name) or {}
            return str(entry.get("value", "")) if isinstance(entry, dict) else str(entry)

        title = strip_html(value("ObjectName")) or str(page.get("title", "")).removeprefix("File:").rsplit(".", 1)[0]
        return Candidate(
            source=self.name, source_id=str(page.get("pageid", page.get("title", ""))), image_url=str(url),
            page_url=str(info.get("descriptionurl", "")), author=strip_html(value("Artist")) or strip_html(value("Credit")),
            title=title, license_name=strip_html(value("LicenseShortName")) or strip_html(value("UsageTerms")),
            license_url=value("LicenseUrl").strip(),
            width=info.get("thumbwidth") if thumb else info.get("width"),
            height=info.get("thumbheight") if thumb else info.get("height"),
            sha1=None if thumb else (str(info["sha1"]) if info.get("sha1") else None))
