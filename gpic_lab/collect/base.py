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
    flags: dict[str, str] = field(default_factory=dict)  # extra provenance (Commons license flags, Flickr size)

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict (the deferred-download queue stores candidates in the collection state)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Candidate:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Skip:
    """A listed entry that cannot be collected, with the reason it is counted under."""

    source_id: str
    reason: str


@dataclass
class Page:
    """One API page. items holds Candidates, or Skips for listed entries that cannot be collected (e.g.
    'size-unavailable', 'unsupported-mime'); every entry carries its source id, which the collector uses to handle
    each listed file exactly once (repeats within and across pages, and on resume, are recognised by id)."""

    items: list[Candidate | Skip]
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
