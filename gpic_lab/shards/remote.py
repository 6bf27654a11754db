"""HTTP(S) shard access with the standard library: a streamed GET per shard and byte-range reads per sample.

Every failure surfaces as an `OSError` naming the URL (HTTP status such as 429/5xx, timeout, connection closed
before Content-Length bytes, truncated chunked body), so callers treat network faults as "cannot read shard" and
retry at the shard boundary (`gpic_lab.loader.stream`) instead of mistaking a cut body for a truncated tar. Other fsspec
protocols (s3://, gs://, ...) go through fsspec in `gpic_lab.shards.reader`.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import urllib.request
from collections.abc import Iterator
from typing import Any, BinaryIO

TIMEOUT_ENV = "GPIC_LAB_HTTP_TIMEOUT"  # seconds per connect / read (default 60)


def is_http(url: str) -> bool:
    return str(url).lower().startswith(("http://", "https://"))


def _timeout() -> float:
    from gpic_lab.errors import UsageError

    raw = os.environ.get(TIMEOUT_ENV, "60")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def _request(url: str, headers: dict[str, str] | None = None) -> Any:
    from gpic_lab import __version__

    req = urllib.request.Request(url, headers={"User-Agent": f"gpic-lab/{__version__}", **(headers or {})})
    return urllib.request.urlopen(req, timeout=_timeout())  # noqa: S310 - http(s) only (is_http)


class _Body(io.RawIOBase):
    """A response body that raises OSError when the connection ends before Content-Length bytes (http.client
    returns b"" there) or a chunked body is cut (http.client raises IncompleteRead, not an OSError)."""

    def __init__(self, url: str, response: Any) -> None:
        self.url, self.response, self.got = url, response, 0
        length = response.headers.get("Content-Length")
        self.expected = int(length) if length and length.isdigit() else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self.response.readinto(buffer)
        except http.client.HTTPException as exc:
            raise OSError(f"{self.url}: body cut after {self.got} bytes ({exc.__class__.__name__})") from exc
        if n == 0 and self.expected is not None and self.got < self.expected and len(buffer):
            raise OSError(f"{self.url}: connection closed after {self.got} of {self.expected} bytes")
        self.got += n
        return n

    def close(self) -> None:
        self.response.close()
        super().close()


@contextlib.contextmanager
def open_http(url: str) -> Iterator[BinaryIO]:
    """Stream a shard: one GET, read sequentially through a 1 MiB buffer."""
    body = _Body(url, _request(url))
    with io.BufferedReader(body, 1 << 20) as fh:
        yield fh  # type: ignore[misc]


def read_http_range(url: str, offset: int, size: int) -> bytes:
    """Exactly `size` bytes at `offset` (a Range request; a server that ignores Range is read up to the end)."""
    with contextlib.closing(_request(url, {"Range": f"bytes={offset}-{offset + size - 1}"})) as resp:
        body = _Body(url, resp)
        data = body.readall() if resp.status == 206 else _skip_then_read(body, offset, size)
    if len(data) != size:
        raise OSError(f"{url}: range {offset}+{size}: got {len(data)} bytes")
    return data


def _skip_then_read(body: _Body, offset: int, size: int) -> bytes:
    with io.BufferedReader(body, 1 << 20) as fh:
        while offset > 0:
            chunk = fh.read(min(offset, 1 << 20))
            if not chunk:
                return b""
            offset -= len(chunk)
        return fh.read(size)


def head_http(url: str) -> dict[str, str]:
    """The response headers of a HEAD request (lower-case names); a server that refuses HEAD is asked for byte 0
    with a GET, whose ``Content-Range`` total gives the size."""
    import urllib.error

    try:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "gpic-lab"})
        with contextlib.closing(urllib.request.urlopen(req, timeout=_timeout())) as resp:  # noqa: S310
            return {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        if exc.code not in (403, 405, 501):
            raise OSError(f"{url}: HEAD: HTTP {exc.code}") from exc
    with contextlib.closing(_request(url, {"Range": "bytes=0-0"})) as resp:
        headers = {k.lower(): v for k, v in resp.headers.items()}
    total = headers.get("content-range", "").rpartition("/")[2]
    if total.isdigit():
        headers["content-length"] = total
    return headers
