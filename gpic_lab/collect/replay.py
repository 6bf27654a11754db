"""A local replay server (127.0.0.1 only) answering like the Flickr REST API and the Wikimedia Commons API, serving
real images from the sample corpus, with the APIs' documented behaviours (see replay_apis) and fault injection.
Used by tests, the collect benchmark and notebook 02.

Endpoints: /flickr/services/rest/ (flickr.photos.search), /commons/w/api.php (action=query with
generator=allimages|categorymembers + prop=imageinfo), /img/<id>/<name>.<ext> (image bytes: Flickr size variants
named like Flickr's static URLs, Commons originals `o.<ext>` and thumbnails `<w>px-thumb.<ext>`).

Faults, queued with `inject(target, fault, count)` or `faults="api:429,image:truncate"` (target api|image|any):
429 (with Retry-After: retry_after), 429-bare (no Retry-After), 429-long (Retry-After: long_retry_after), 403 (a
User-Agent policy block), 404 (gone), 500, 503 (with Retry-After), timeout (sleeps past the client timeout, then answers),
truncate (half the declared Content-Length), hang (sleeps hang_s); API only: malformed-json, flickr-10,
flickr-105, flickr-106 (stat=fail, HTTP 200), maxlag / ratelimited / readonly (Commons error, HTTP 200 with
Retry-After; maxlag only when the request sent maxlag); image only: non-image (an HTML body).

`ua_policy` ("api", "image") answers 403 to requests whose User-Agent has no contact URL or email, like Wikimedia.
`latency_s` delays every image answer (a CDN's round trip), for throughput measurements.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import threading
import time
import urllib.parse
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpic_lab.collect import replay_apis
from gpic_lab.collect.replay_catalog import (
    FLICKR_SIZES,
    ReplayItem,
    bulk_commons_catalog,
    bulk_flickr_catalog,
    commons_specials,
    default_catalog,
    encode,
)

__all__ = ["FAULTS", "ReplayItem", "ReplayServer", "bulk_commons_catalog", "bulk_flickr_catalog", "commons_specials",
           "default_catalog", "parse_faults"]

FAULTS = ("429", "429-bare", "429-long", "403", "404", "500", "503", "timeout", "truncate", "malformed-json", "non-image",
          "hang", "flickr-10", "flickr-105", "flickr-106", "maxlag", "ratelimited", "readonly")
API_ONLY = {"malformed-json", "flickr-10", "flickr-105", "flickr-106", "maxlag", "ratelimited", "readonly"}
IMAGE_ONLY = {"non-image"}
FLICKR_MESSAGES = {"flickr-10": "Sorry, the Flickr search API is not currently available.",
                   "flickr-105": "Service currently unavailable", "flickr-106": "Write operation failed"}
COMMONS_ERRORS = {"maxlag": "Waiting for 10.64.32.29: 7 seconds lagged.",
                  "ratelimited": "You've exceeded your rate limit. Please wait some time and try again.",
                  "readonly": "The wiki is currently in read-only mode."}
UA_BLOCK = (b"Please set a user-agent and respect our robot policy https://w.wiki/4wJS. "
            b"See also https://meta.wikimedia.org/wiki/User-Agent_policy\n")
_CONTACT = re.compile(rb"https?://|[^\s@()<>]+@[^\s@()<>]+\.[A-Za-z]{2,}")
_FLICKR_NAME = re.compile(r"^\d+_[a-z0-9]+(?:_([a-z0-9]+))?$")


def parse_faults(spec: str | None) -> list[tuple[str, str]]:
    """'api:429,image:truncate' -> [('api', '429'), ('image', 'truncate')]; ValueError on unknown names."""
    out = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        target, _, fault = part.strip().partition(":")
        if target not in ("api", "image", "any") or fault not in FAULTS:
            raise ValueError(f"bad fault {part!r}: use api|image|any:<{'|'.join(FAULTS)}>")
        out.append((target, fault))
    return out


class ReplayServer:
    """Threaded HTTP server on 127.0.0.1:<port> (0 = any free port). Use as a context manager or start()/stop().

    Args:
        flickr_cap / cap_mode: Flickr's result cap (4,000) and what lies past it ("repeat" pages or "error" 20).
        drift / unstable / total_as_string: Flickr page instability and the string-typed `total`.
        retry_after / long_retry_after / maxlag_retry_after: Retry-After values of the 429/503, 429-long and
            Commons transient-error faults.
        ua_policy: targets ("api", "image") that answer 403 to a User-Agent without contact information.
        latency_s: delay of every image answer.
    """

    def __init__(self, items: list[ReplayItem] | None = None, api_key: str = "replay-key", port: int = 0,
                 faults: str | None = None, retry_after: int = 1, timeout_s: float = 2.0, hang_s: float = 60.0,
                 flickr_cap: int = 4000, cap_mode: str = "repeat", drift: int = 0, unstable: bool = False,
                 total_as_string: bool = True, long_retry_after: int = 3600, maxlag_retry_after: int = 5,
                 ua_policy: tuple[str, ...] = (), latency_s: float = 0.0) -> None:
        if cap_mode not in ("repeat", "error"):
            raise ValueError(f"cap_mode must be 'repeat' or 'error', got {cap_mode!r}")
        self.items = items if items is not None else default_catalog()
        self.api_key, self.retry_after, self.timeout_s, self.hang_s = api_key, retry_after, timeout_s, hang_s
        self.flickr_cap, self.cap_mode, self.drift, self.unstable = flickr_cap, cap_mode, drift, unstable
        self.total_as_string, self.long_retry_after = total_as_string, long_retry_after
        self.maxlag_retry_after, self.ua_policy, self.latency_s = maxlag_retry_after, tuple(ua_policy), latency_s
        self._faults: deque[tuple[str, str]] = deque(parse_faults(faults))
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self.requests_seen = 0
        self.active: Counter = Counter()  # requests in flight by kind (api | image)
        self.max_active: Counter = Counter()  # the most in flight at once (arrived, answer not yet started), by kind
        self._by_id = {it.id: it for it in self.items}
        self._variants: dict[tuple[str, str], bytes] = {}
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def flickr_url(self) -> str:
        return f"{self.url}/flickr/services/rest/"

    @property
    def commons_url(self) -> str:
        return f"{self.url}/commons/w/api.php"

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="gpic-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def inject(self, target: str, fault: str, count: int = 1) -> None:
        """Queue `count` faults for the next requests of `target` (api | image | any)."""
        parse_faults(f"{target}:{fault}")
        with self.lock:
            self._faults.extend([(target, fault)] * count)

    def pending_faults(self) -> int:
        with self.lock:
            return len(self._faults)

    def take_fault(self, kind: str) -> str | None:
        with self.lock:
            for i, (target, fault) in enumerate(self._faults):
                if target in (kind, "any") and not (fault in API_ONLY and kind != "api") \
                        and not (fault in IMAGE_ONLY and kind != "image"):
                    del self._faults[i]
                    return fault
        return None

    def expected_keys(self, source: str, license_ids: tuple[int, ...] | None = None, size: str = "z",
                      thumb: int | None = 640, category: str | None = None) -> set[str]:
        """sha256 keys a complete collection of `source` should hold: Flickr photos that decode, filtered by license
        ids, in the size the collector picks; Commons files with a permissive license, no NonFree/Restrictions flag
        and an author (Artist, else Attribution), as `thumb`-box thumbnails (None: originals, JPEG/PNG only), all
        files or those of one `category`."""
        keys = set()
        for it in self.items:
            if it.source != source or (category is not None and category not in it.categories):
                continue
            if source == "flickr":
                if it.kind != "image" or (license_ids is not None and int(it.license) not in license_ids):
                    continue
                body = self.variant(it, pick_size(it, size))
            else:
                body = self._commons_bytes(it, thumb)
                if body is None:
                    continue
            keys.add(hashlib.sha256(body).hexdigest())
        return keys

    def _commons_bytes(self, it: ReplayItem, thumb: int | None) -> bytes | None:
        from gpic_lab.collect.base import strip_html
        from gpic_lab.core.licenses import check_flags, normalize

        lic = normalize(it.license, it.license_url or None)
        flags = {"nonfree": it.meta.get("NonFree"), "restrictions": it.meta.get("Restrictions")}
        author = strip_html(it.meta.get("Artist", it.author) or it.meta.get("Attribution") or "")
        if not lic.permissive or check_flags(flags, lic) or not author:
            return None
        if thumb is None:
            return it.body if it.kind == "image" else None
        if it.thumb_error or it.kind not in ("image", "svg", "tiff"):
            return None
        w, h = it.dims()
        return self.thumbnail(it, replay_apis.fit_box(w, h, thumb, thumb)[0])

    def original(self, it: ReplayItem) -> bytes:
        """The bytes of a Commons original: an SVG document, a TIFF, or the item's image bytes."""
        if it.kind == "svg":
            w, h = it.dims()
            return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
                    f'<rect width="{w}" height="{h}" fill="#{int(it.id) % 4096:03x}"/></svg>').encode()
        if it.kind == "tiff":
            return self._cached(it, "tiff", lambda img: encode(img, "tif"))
        return it.body

    def variant(self, it: ReplayItem, size: str) -> bytes:
        """Flickr size variant bytes: crops are centred squares, others cap the long side ('o' = original)."""
        _suffix, px, crop = FLICKR_SIZES[size]
        if px is None or it.kind != "image" or (not crop and max(it.dims()) <= px):
            return it.body

        def make(img: Any) -> bytes:
            if crop:
                side = min(img.size)
                left, top = (img.width - side) // 2, (img.height - side) // 2
                img = img.crop((left, top, left + side, top + side)).resize((px, px))
            else:
                img.thumbnail((px, px))
            return encode(img, it.ext)

        return self._cached(it, size, make)

    def thumbnail(self, it: ReplayItem, width: int) -> bytes:
        """A Commons thumbnail `width` px wide, as PNG (SVG originals) or JPEG (TIFF, PDF) or the original's format."""
        w, h = it.dims()
        if width >= w and it.kind == "image":
            return it.body
        ext = replay_apis.thumb_ext(it)

        def make(img: Any) -> bytes:
            return encode(img.resize((width, max(1, round(h * width / w)))), ext)

        return self._cached(it, f"{width}px", make)

    def _cached(self, it: ReplayItem, name: str, make: Any) -> bytes:
        with self.lock:
            cached = self._variants.get((it.id, name))
        if cached is None:
            from PIL import Image

            cached = make(Image.open(io.BytesIO(it.body)).convert("RGB"))
            with self.lock:
                self._variants[(it.id, name)] = cached
        return cached

    def image_for(self, it: ReplayItem, name: str) -> tuple[bytes, str] | None:
        """(bytes, content type) for an image path name, None when the name is not one of the item's URLs."""
        stem, _, ext = name.rpartition(".")
        if it.source == "wikimedia":
            if stem == "o":
                return self.original(it), replay_apis.MIMES["pdf" if it.kind == "pdf" else it.ext]
            if stem.endswith("px-thumb") and stem[:-8].isdigit():
                return self.thumbnail(it, int(stem[:-8])), replay_apis.MIMES[ext]
            return None
        m = _FLICKR_NAME.match(stem)
        size = replay_apis.SUFFIX_TO_SIZE.get(m.group(1) or "") if m else None
        if size is None or size not in it.flickr_sizes():
            return None
        return self.variant(it, size), replay_apis.MIMES[it.ext]

    def flickr_search(self, q: dict[str, str]) -> dict[str, Any]:
        """The answer to one flickr.photos.search request (see replay_apis)."""
        return replay_apis.flickr_search(self, q)

    def commons_query(self, q: dict[str, str]) -> dict[str, Any]:
        """The answer to one Commons action=query request (see replay_apis)."""
        return replay_apis.commons_query(self, q)

    def ua_allowed(self, user_agent: str, kind: str) -> bool:
        return kind not in self.ua_policy or bool(_CONTACT.search(user_agent.encode()))


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops connections of concurrent clients (1 s SYN retransmits)


def pick_size(it: ReplayItem, want: str) -> str:
    """The size a correct client picks: the largest uncropped size the photo has whose long side is not above the
    wanted size's (the original when o_dims shows it is not above, or when the original was asked for)."""
    limit = FLICKR_SIZES[want][1]
    have = it.flickr_sizes()
    if "o" in have and (want == "o" or (limit is not None and max(it.dims()) <= limit)):
        return "o"
    allowed = [s for s in have if s != "o" and not FLICKR_SIZES[s][2]
               and (limit is None or FLICKR_SIZES[s][1] <= limit)]
    return max(allowed, key=lambda s: max(replay_apis.flickr_dims(it, s)))


def _handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
            return

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            parts = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(parts.query))
            kind = "image" if parts.path.startswith("/img/") else "api"
            fault = server.take_fault(kind)
            self.entry = {"path": parts.path, "kind": kind, "fault": fault, "t": time.time(), "q": q,
                          "api_key": q.get("api_key"), "ua": self.headers.get("User-Agent", ""),
                          "accept_encoding": self.headers.get("Accept-Encoding", ""), "status": None}
            with server.lock:
                server.log.append(self.entry)
            self.kind = kind
            with server.lock:
                server.active[kind] += 1
                server.max_active[kind] = max(server.max_active[kind], server.active[kind])
            try:
                self._answer(parts.path, q, kind, fault)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                self._done()

        def _done(self) -> None:
            """The request stops counting as in flight once its answer starts (the client cannot finish earlier)."""
            if self.kind is not None:
                with server.lock:
                    server.active[self.kind] -= 1
                self.kind = None

        def _answer(self, path: str, q: dict[str, str], kind: str, fault: str | None) -> None:
            if not server.ua_allowed(self.headers.get("User-Agent", ""), kind) or fault == "403":
                return self._send(403, UA_BLOCK, "text/plain")
            if fault == "404":
                return self._send(404, b"not found", "text/plain")
            if fault in ("429", "429-bare", "429-long", "500", "503"):
                wait = {"429": server.retry_after, "503": server.retry_after, "429-long": server.long_retry_after}
                headers = {"Retry-After": str(wait[fault])} if fault in wait else {}
                return self._send(int(fault[:3]), b"busy", "text/plain", headers)
            if fault in ("timeout", "hang"):
                time.sleep(server.timeout_s if fault == "timeout" else server.hang_s)
            if kind == "api":
                return self._api(path, q, fault)
            return self._image(path, fault)

        def _api(self, path: str, q: dict[str, str], fault: str | None) -> None:
            headers: dict[str, str] = {}
            if path == "/flickr/services/rest/":
                if fault in FLICKR_MESSAGES:
                    answer = {"stat": "fail", "code": int(fault.split("-")[1]), "message": FLICKR_MESSAGES[fault]}
                else:
                    answer = server.flickr_search(q)
            elif path == "/commons/w/api.php":
                if fault in COMMONS_ERRORS and (fault != "maxlag" or q.get("maxlag")):
                    answer = {"error": {"code": fault, "info": COMMONS_ERRORS[fault]}, "servedby": "mw-replay"}
                    headers = {"Retry-After": str(server.maxlag_retry_after), "MediaWiki-API-Error": fault}
                    if fault == "maxlag":
                        headers["X-Database-Lag"] = "7"
                else:
                    answer = server.commons_query(q)
            else:
                return self._send(404, b"not found", "text/plain")
            body = json.dumps(answer).encode()
            if fault == "malformed-json":
                body = body[: len(body) // 2]
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
            return self._send(200, body, "application/json", headers, truncate=fault == "truncate")

        def _image(self, path: str, fault: str | None) -> None:
            _img, item_id, name = path.split("/", 3)[1:] if path.count("/") == 3 else ("", "", "")
            it = server._by_id.get(item_id)
            found = server.image_for(it, name) if it is not None else None
            if server.latency_s:
                time.sleep(server.latency_s)
            if found is None:
                return self._send(404, b"no such image", "text/plain")
            if fault == "non-image" or it.kind == "html":
                return self._send(200, b"<html><body>Photo unavailable</body></html>", "text/html")
            return self._send(200, found[0], found[1], truncate=fault == "truncate")

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
                  truncate: bool = False) -> None:
            self.entry["status"] = status
            self._done()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncate else body)
            self.wfile.flush()

    return Handler
