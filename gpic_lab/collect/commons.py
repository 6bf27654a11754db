"""Wikimedia Commons API source: generator=allimages or generator=categorymembers + prop=imageinfo
(iiprop=url|size|extmetadata|sha1|mime|thumbmime), following the API's continuation. No key is needed, but
Wikimedia's User-Agent policy requires a contact (URL or email) in the User-Agent: see `wikimedia_user_agent`.

Every request sends maxlag=5 (Wikimedia asks non-interactive tools to); `maxlag`, `ratelimited` and `readonly`
errors arrive as HTTP 200 with Retry-After and are waited out and retried.

Property continuation: with a thumbnail size (iiurlwidth) the API transforms at most 50 files per request and
continues with `iicontinue` over the same generator batch, without `batchcomplete`. One `fetch` follows those
continuations and merges the batch, so each file is written or counted once.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gpic_lab.collect.base import Candidate, Page, Skip, strip_html
from gpic_lab.collect.http import USER_AGENT, HttpClient, Retryable, retry_after
from gpic_lab.errors import GpicError, UsageError

COMMONS_API = "https://commons.wikimedia.org/w/api.php"
CONTACT_ENV = "GPIC_LAB_CONTACT"
IMAGE_MIMES = ("image/jpeg", "image/png")
EXTMETA = ("LicenseShortName|LicenseUrl|UsageTerms|Artist|Attribution|Credit|ObjectName|AttributionRequired|"
           "Copyrighted|NonFree|Restrictions")
MAXLAG = 5  # seconds; https://www.mediawiki.org/wiki/Manual:Maxlag_parameter
TRANSIENT_ERRORS = ("maxlag", "ratelimited", "readonly")
DEFAULT_TRANSIENT_WAIT = 5.0  # the API sends Retry-After: 5 with maxlag; used when a transient error has none
# OUR CHOICE: GPIC's mean image is 479 x 587 (H x W); thumbnails fit a 640 x 640 box (iiurlwidth=iiurlheight=640).
DEFAULT_THUMB = 640
MAX_CONTINUATIONS = 1000  # a guard against an API that never completes a batch
_CONTACT = re.compile(r"https?://\S+|[^\s@()<>]+@[^\s@()<>]+\.[A-Za-z]{2,}")


def has_contact(user_agent: str) -> bool:
    """Whether a User-Agent carries a contact URL or email address."""
    return bool(_CONTACT.search(user_agent or ""))


def wikimedia_user_agent(contact: str | None = None, user_agent: str | None = None) -> str:
    """A User-Agent that Wikimedia's policy accepts: `gpic-lab-collect/V (CONTACT) python-urllib/X`.

    Args:
        contact: a URL or an email address; default $GPIC_LAB_CONTACT.
        user_agent: a complete User-Agent of your own instead; it must contain a URL or an email address.

    Raises UsageError (one line) when no contact is given.
    """
    import sys

    if user_agent:
        if not has_contact(user_agent):
            raise UsageError("the User-Agent must contain a contact URL or email address (Wikimedia's User-Agent "
                             "policy); e.g. --user-agent 'mybot/1.0 (https://example.org/mybot; me@example.org)'")
        return user_agent
    contact = (contact or os.environ.get(CONTACT_ENV, "")).strip()
    if not contact:
        raise UsageError(f"Wikimedia requires contact information in the User-Agent: give --contact URL_OR_EMAIL "
                         f"or set {CONTACT_ENV}")
    if not _CONTACT.fullmatch(contact):
        raise UsageError(f"--contact must be a URL (https://...) or an email address, got {contact!r}")
    name = USER_AGENT.split(" ", 1)[0]
    return f"{name} ({contact}) python-urllib/{sys.version_info.major}.{sys.version_info.minor}"


def _check(data: Any, headers: dict[str, str]) -> None:
    """Raise Retryable for maxlag / ratelimited / readonly (HTTP 200 with an error body and Retry-After)."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code", ""))
        if code in TRANSIENT_ERRORS:
            wait = retry_after(headers.get("retry-after"))
            raise Retryable(code, DEFAULT_TRANSIENT_WAIT if wait is None else wait)


def _mime_of(url: str) -> str:
    """A thumbnail's MIME type from its URL, for answers without thumbmime."""
    ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}.get(ext, "")


def _value(meta: dict[str, Any], name: str) -> str:
    entry = meta.get(name) or {}
    return str(entry.get("value", "")) if isinstance(entry, dict) else str(entry)


class CommonsSource:
    """Commons file listing. Cursor: the API's `continue` object of the last complete batch ({} at the start)."""

    name = "wikimedia"

    def __init__(self, client: HttpClient, base_url: str = COMMONS_API, category: str | None = None,
                 start: str | None = None, limit: int = 50, thumb_width: int | None = DEFAULT_THUMB) -> None:
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
        params: dict[str, Any] = {"action": "query", "format": "json", "formatversion": 2, "maxlag": MAXLAG,
                                  "prop": "imageinfo", "iiprop": "url|size|extmetadata|sha1|mime|thumbmime",
                                  "iiextmetadatafilter": EXTMETA}
        if self.thumb_width:
            params.update(iiurlwidth=self.thumb_width, iiurlheight=self.thumb_width)
        if self.category:
            params.update(generator="categorymembers", gcmtitle=f"Category:{self.category}", gcmtype="file",
                          gcmlimit=self.limit)
        else:
            params.update(generator="allimages", gailimit=self.limit, gaisort="name")
            if self.start:
                params["gaifrom"] = self.start
        return params

    def _request(self, cont: dict[str, Any]) -> dict[str, Any]:
        data = self.client.get(self.base_url, {**self._params(), **cont}, parse_json=True, check=_check)
        if not isinstance(data, dict):
            raise GpicError(f"Commons API returned {type(data).__name__}, expected an object")
        if "error" in data:
            err = data["error"]
            raise GpicError(f"Commons API error {err.get('code', '?')}: {err.get('info', '')}")
        return data

    def fetch(self, cursor: Any) -> Page:
        """One generator batch, following property continuation (iicontinue) until the batch is complete."""
        cont, merged = dict(cursor or {}), {}
        for _ in range(MAX_CONTINUATIONS):
            data = self._request(cont)
            pages = (data.get("query") or {}).get("pages") or []
            for page in pages.values() if isinstance(pages, dict) else pages:  # formatversion=1 gives an object
                key = str(page.get("pageid", page.get("title", "")))
                seen = merged.setdefault(key, {k: v for k, v in page.items() if k != "imageinfo"})
                if page.get("imageinfo") and not seen.get("imageinfo"):
                    seen["imageinfo"] = page["imageinfo"]
            more = dict(data.get("continue") or {})
            if data.get("batchcomplete") or not any(k.startswith("ii") for k in more):
                break
            cont = more
        else:
            raise GpicError(f"Commons API did not complete a batch within {MAX_CONTINUATIONS} continuations")
        items = [self._candidate(p) for p in sorted(merged.values(), key=lambda p: str(p.get("title", "")))]
        return Page(items, more or None)

    def _candidate(self, page: dict[str, Any]) -> Candidate | Skip:
        pid = str(page.get("pageid", page.get("title", "")))
        infos = page.get("imageinfo") or []
        if not infos:
            return Skip(pid, "imageinfo-missing")
        info = infos[0]
        if not str(info.get("mime") or "").startswith("image/"):
            return Skip(pid, "unsupported-mime")  # PDF, video, audio: their thumbnails are not photos
        if self.thumb_width and info.get("thumberror"):
            return Skip(pid, "thumb-error")  # never fall back to the (possibly huge) original silently
        thumb = bool(self.thumb_width and info.get("thumburl"))
        url = info.get("thumburl") if thumb else info.get("url")
        mime = str((info.get("thumbmime") or _mime_of(str(url))) if thumb else info.get("mime") or "")
        if not url:
            return Skip(pid, "imageinfo-missing")
        if mime not in IMAGE_MIMES:
            return Skip(pid, "unsupported-mime")
        meta = info.get("extmetadata") or {}
        title = strip_html(_value(meta, "ObjectName")) or str(page.get("title", "")).removeprefix("File:").rsplit(".", 1)[0]
        # Artist is the author; Attribution is the credit line the license asks for; Credit is the *source*
        # ("Own work"), never the author.
        author = strip_html(_value(meta, "Artist")) or strip_html(_value(meta, "Attribution"))
        flags = {"size": f"{self.thumb_width}px" if thumb else "original",
                 "attribution_required": _value(meta, "AttributionRequired") or None,
                 "copyrighted": _value(meta, "Copyrighted") or None, "nonfree": _value(meta, "NonFree") or None,
                 "restrictions": strip_html(_value(meta, "Restrictions")) or None}
        return Candidate(
            source=self.name, source_id=pid, image_url=str(url), page_url=str(info.get("descriptionurl", "")),
            author=author, title=title,
            license_name=strip_html(_value(meta, "LicenseShortName")) or strip_html(_value(meta, "UsageTerms")),
            license_url=_value(meta, "LicenseUrl").strip(),
            width=info.get("thumbwidth") if thumb else info.get("width"),
            height=info.get("thumbheight") if thumb else info.get("height"),
            sha1=None if thumb else (str(info["sha1"]) if info.get("sha1") else None), flags=flags)
