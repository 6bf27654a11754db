"""What API sources hand the collector: candidates (one image to fetch) grouped in pages with a resumable cursor."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Candidate:
    """One image an API listed. URLs go to the provenance table only, never into shards."""

    source: str  # flickr | wikimedia
    source_id: str
    image_url: str
    page_url: str
    author: str
    title: str
    license_name: str
    license_url: str
    width: int | None = None  # as declared by the API (the shard gets the decoded size)
    height: int | None = None
    sha1: str | None = None  # declared SHA-1 of the bytes at image_url (Commons originals)


@dataclass
class Page:
    """One API page. items holds Candidates, or a reason string for a listed entry that cannot be collected
    (e.g. 'size-unavailable', 'unsupported-mime'), so that offsets into a page stay stable on resume."""

    items: list[Candidate | str]
    next_cursor: Any  # None when the listing is exhausted
    total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """An API listing: `name`, `query()` (a JSON-able description checked on resume), `fetch(cursor)`."""

    name: str

    def query(self) -> dict[str, Any]: ...

    def first_cursor(self) -> Any: ...

    def fetch(self, cursor: Any) -> Page: ...


def strip_html(text: str | None) -> str:
    """Plain text from an API value that may hold HTML (Commons Artist/ObjectName)."""
    text = re.sub(r"<[^>]+>", " ", text or "")
    return re.sub(r"\s+", " ", html.unescape(text)).strip()
