"""A local replay server (127.0.0.1 only) answering like the Flickr REST API and the Wikimedia Commons API,
serving real images from the sample corpus, with fault injection. Used by tests and by notebook 02.

Endpoints: /flickr/services/rest/ (flickr.photos.search), /commons/w/api.php (action=query with
generator=allimages|categorymembers + prop=imageinfo), /img/<id>/<variant>.<ext> (image bytes).

Faults (queued with `inject(target, fault, count)` or `faults="api:429,image:truncate"`; target api|image|any):
429 (with Retry-After), 500, 503, timeout (sleeps past the client timeout, then answers), truncate (sends half of
the declared Content-Length), malformed-json (api), non-image (image: an HTML body), hang (sleeps `hang_s`).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "503", "timeout", "truncate", "malformed-json", "non-image", "hang")
FLICKR_SIZES = {"o": None, "c": 800, "z": 640, "n": 320, "q": 150}
_COMMONS_LICENSES = [  # (LicenseShortName, LicenseUrl) as Commons extmetadata gives them
    ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0"), ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0"),
    ("Public domain", ""), ("CC0", "http://creativecommons.org/publicdomain/zero/1.0/deed.en"),
    ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0"), ("GFDL", "http://www.gnu.org/copyleft/fdl.html"),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0"), ("CC BY 3.0 de", "https://creativecommons.org/licenses/by/3.0/de/deed.en"),
]


@dataclass
class ReplayItem:
    """One listed photo/file. kind: image (bytes served), html (a non-image body is served), pdf (Commons mime)."""

    id: str
    source: str
    body: bytes
    ext: str
    license: str  # Flickr: license id as text; Commons: LicenseShortName
    license_url: str
    author: str
    title: str
    uploaded: int
    categories: tuple[str, ...] = ()
    kind: str = "image"
    sizes: tuple[str, ...] = tuple(FLICKR_SIZES)
    _dims: tuple[int, int] | None = field(default=None, repr=False)

    def dims(self) -> tuple[int, int]:
        if self._dims is None:
            from PIL import Image

            self._dims = Image.open(io.BytesIO(self.body)).size if self.kind == "image" else (640, 480)
        return self._dims


def _encode(img: Any, ext: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG" if ext == "jpg" else "PNG", **({"quality": 90} if ext == "jpg" else {}))
    return buf.getvalue()


def default_catalog(sample: str | None = None) -> list[ReplayItem]:
    """A deterministic catalog from the sample corpus's real images: 26 Flickr photos (one byte-duplicate pair,
    one without the 'c' size, one serving HTML) and 16 Commons files (mixed licenses, one PDF)."""
    from PIL import Image, ImageOps

    from gpic_lab.paths import sample_dir
    from gpic_lab.shards.reader import iter_samples

    root = sample or sample_dir()
    images = sorted((s.key, s.image) for s in iter_samples([f"{root}/train", f"{root}/val", f"{root}/test"]))
    originals = [Image.open(io.BytesIO(b)).convert("RGB") for _k, b in images]
    flickr_ids = (4, 9, 10, 7, 8, 11, 2, 5)  # mostly permissive; 2 (NC) and 5 (SA) are filtered by the search
    items: list[ReplayItem] = []
    for i, img in enumerate(originals * 2):
        variant = img if i < len(originals) else ImageOps.mirror(img)
        body = _encode(variant, "jpg")
        items.append(ReplayItem(f"5{i:09d}", "flickr", body, "jpg", str(flickr_ids[i % len(flickr_ids)]), "",
                                f"Photographer {i % 5}", f"Photo {i}", 1_600_000_000 + 86_400 * i))
    items[3].sizes = ("o", "z", "n", "q")  # no 'c': the client falls back to 'z'
    items[5].body = items[4].body  # an exact byte duplicate under another photo id
    items[8].kind = "html"  # the image URL answers with an HTML page
    for j, img in enumerate(originals + originals[:3]):
        crop = img.crop((0, 0, max(64, img.width * 3 // 4), max(64, img.height * 3 // 4)))
        ext = "png" if j % 4 == 0 else "jpg"
        short, url = _COMMONS_LICENSES[j % len(_COMMONS_LICENSES)]
        artist = f'<a href="//commons.wikimedia.org/wiki/User:Uploader{j}" title="User:Uploader{j}">Uploader {j}</a>'
        items.append(ReplayItem(f"{7000 + j}", "wikimedia", _encode(crop, ext), ext, short, url, artist,
                                f"Sample file {j:02d}", 1_500_000_000 + j, ("Sample images",)))
    items[-1].kind = "pdf"
    return items


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
    """Threaded HTTP server on 127.0.0.1:<port> (0 = any free port). Use as a context manager or start()/stop()."""

    def __init__(self, items: list[ReplayItem] | None = None, api_key: str = "replay-key", port: int = 0,
                 faults: str | None = None, retry_after: int = 1, timeout_s: float = 2.0, hang_s: float = 60.0) -> None:
        self.items = items if items is not None else default_catalog()
        self.api_key, self.retry_after, self.timeout_s, self.hang_s = api_key, retry_after, timeout_s, hang_s
        self._faults: deque[tuple[str, str]] = deque(parse_faults(faults))
        self._lock = threading.Lock()
        self.log: list[dict[str, Any]] = []
        self._by_id = {it.id: it for it in self.items}
        self._variants: dict[tuple[str, str], bytes] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
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
        with self._lock:
            self._faults.extend([(target, fault)] * count)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def take_fault(self, kind: str) -> str | None:
        with self._lock:
            for i, (target, fault) in enumerate(self._faults):
                if target in (kind, "any") and not (fault == "malformed-json" and kind != "api") \
                        and not (fault == "non-image" and kind != "image"):
                    del self._faults[i]
                    return fault
        return None

    def expected_keys(self, source: str, license_ids: tuple[int, ...] | None = None, size: str = "c") -> set[str]:
        """sha256 keys a complete collection of `source` should hold (served images that decode; Flickr filtered
        by license ids, Commons by GPIC's allow-list)."""
        from gpic_lab.core.licenses import normalize

        keys = set()
        for it in self.items:
            if it.source != source or it.kind != "image":
                continue
            if source == "flickr" and license_ids is not None and int(it.license) not in license_ids:
                continue
            if source == "wikimedia" and not normalize(it.license, it.license_url or None).permissive:
                continue
            body = it.body if source == "wikimedia" else self.variant(it, self._flickr_suffix(it, size))
            keys.add(hashlib.sha256(body).hexdigest())
        return keys

    @staticmethod
    def _flickr_suffix(it: ReplayItem, want: str = "c") -> str:
        """The variant a client asking for `want` gets: that size, else the largest smaller one served."""
        from gpic_lab.collect.flickr import SIZES

        return next(s for s in SIZES[: SIZES.index(want) + 1][::-1] if s in it.sizes)

    def variant(self, it: ReplayItem, suffix: str) -> bytes:
        """The bytes served for a size variant ('o' = original; others: longest side capped, re-encoded)."""
        cap = FLICKR_SIZES.get(suffix) if it.source == "flickr" else (int(suffix) if suffix.isdigit() else None)
        if cap is None or it.kind != "image":
            return it.body
        with self._lock:
            cached = self._variants.get((it.id, suffix))
        if cached is None:
            from PIL import Image

            img = Image.open(io.BytesIO(it.body)).convert("RGB")
            img.thumbnail((cap, cap))
            cached = _encode(img, it.ext)
            with self._lock:
                self._variants[(it.id, suffix)] = cached
        return cached

    # -- API answers ---------------------------------------------------------------------------------
    def flickr_search(self, q: dict[str, str]) -> dict[str, Any]:
        if q.get("api_key") != self.api_key:
            return {"stat": "fail", "code": 100, "message": "Invalid API Key (Key not found)"}
        if q.get("method") != "flickr.photos.search":
            return {"stat": "fail", "code": 112, "message": f"Method \"{q.get('method')}\" not found"}
        ids = {int(x) for x in q.get("license", "").split(",") if x.strip()}
        lo, hi = int(q.get("min_upload_date") or 0), int(q.get("max_upload_date") or 2**62)
        rows = sorted((it for it in self.items if it.source == "flickr" and (not ids or int(it.license) in ids)
                       and lo <= it.uploaded <= hi), key=lambda it: (it.uploaded, it.id))
        per_page, page = max(1, min(500, int(q.get("per_page", 100)))), max(1, int(q.get("page", 1)))
        chunk = rows[(page - 1) * per_page: page * per_page]
        extras = {x.strip() for x in q.get("extras", "").split(",")}
        return {"photos": {"page": page, "pages": (len(rows) + per_page - 1) // per_page, "perpage": per_page,
                           "total": len(rows), "photo": [self._flickr_photo(it, extras) for it in chunk]},
                "stat": "ok"}

    def _flickr_photo(self, it: ReplayItem, extras: set[str]) -> dict[str, Any]:
        """One search row; like Flickr, url_<s>/width_<s>/height_<s> only for the requested url_<s> extras."""
        row: dict[str, Any] = {"id": it.id, "owner": f"{int(it.id) % 97}@N00", "secret": "abc", "server": "65535",
                               "farm": 66, "title": it.title, "ispublic": 1}
        for extra, fields in (("license", {"license": it.license}), ("owner_name", {"ownername": it.author}),
                              ("date_upload", {"dateupload": str(it.uploaded)})):
            if extra in extras:
                row.update(fields)
        for s in it.sizes:
            if f"url_{s}" not in extras:
                continue
            w, h = self._dims_of(it, s)
            row.update({f"url_{s}": f"{self.url}/img/{it.id}/{s}.{it.ext}", f"width_{s}": w, f"height_{s}": h})
        if "o_dims" in extras:
            row["o_width"], row["o_height"] = it.dims()
        return row

    def _dims_of(self, it: ReplayItem, suffix: str) -> tuple[int, int]:
        w, h = it.dims()
        cap = FLICKR_SIZES.get(suffix)
        if cap is None or max(w, h) <= cap:
            return w, h
        scale = cap / max(w, h)
        return max(1, round(w * scale)), max(1, round(h * scale))

    def commons_query(self, q: dict[str, str]) -> dict[str, Any]:
        gen = q.get("generator")
        files = sorted((it for it in self.items if it.source == "wikimedia"), key=self._file_title)
        if gen == "categorymembers":
            cat = q.get("gcmtitle", "").removeprefix("Category:")
            files = [it for it in files if cat in it.categories]
            limit, token_name = int(q.get("gcmlimit", 10)), "gcmcontinue"
        elif gen == "allimages":
            limit, token_name = int(q.get("gailimit", 10)), "gaicontinue"
            files = [it for it in files if self._file_title(it)[5:] >= q.get("gaifrom", "").replace(" ", "_")]
        else:
            return {"error": {"code": "badvalue", "info": f"Unrecognized value for parameter \"generator\": {gen}"}}
        start = q.get(token_name, "")
        if start:
            files = [it for it in files if self._file_title(it)[5:] >= start]
        chunk, rest = files[:limit], files[limit:]
        out: dict[str, Any] = {"batchcomplete": True,
                               "query": {"pages": [self._commons_page(it, q.get("iiurlwidth")) for it in chunk]}}
        if rest:
            out["continue"] = {token_name: self._file_title(rest[0])[5:], "continue": f"{token_name}||"}
        return out

    @staticmethod
    def _file_title(it: ReplayItem) -> str:
        ext = "pdf" if it.kind == "pdf" else it.ext
        return f"File:{it.title.replace(' ', '_')}.{ext}"

    def _commons_page(self, it: ReplayItem, thumb: str | None) -> dict[str, Any]:
        w, h = it.dims()
        mime = {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}["pdf" if it.kind == "pdf" else it.ext]
        info: dict[str, Any] = {
            "size": len(it.body), "width": w, "height": h, "url": f"{self.url}/img/{it.id}/o.{it.ext}",
            "descriptionurl": f"https://commons.wikimedia.org/wiki/{self._file_title(it)}", "mime": mime,
            "sha1": hashlib.sha1(it.body).hexdigest(),
            "extmetadata": {"LicenseShortName": {"value": it.license, "source": "commons-desc-page"},
                            "Artist": {"value": it.author, "source": "commons-desc-page"},
                            "ObjectName": {"value": it.title, "source": "commons-desc-page"}}}
        if it.license_url:
            info["extmetadata"]["LicenseUrl"] = {"value": it.license_url, "source": "commons-desc-page"}
        if thumb and thumb.isdigit():
            tw = min(int(thumb), w)
            info.update(thumburl=f"{self.url}/img/{it.id}/{tw}.{it.ext}", thumbwidth=tw,
                        thumbheight=max(1, round(h * tw / w)), thumbmime=mime)
        return {"pageid": int(it.id), "ns": 6, "title": self._file_title(it), "imagerepository": "local",
                "imageinfo": [info]}


def _handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
            return

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            parts = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(parts.query))
            kind = "image" if parts.path.startswith("/img/") else "api"
            fault = server.take_fault(kind)
            with server._lock:
                server.log.append({"path": parts.path, "kind": kind, "fault": fault, "t": time.time(),
                                   "api_key": q.get("api_key")})
            try:
                self._answer(parts.path, q, kind, fault)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _answer(self, path: str, q: dict[str, str], kind: str, fault: str | None) -> None:
            if fault in ("429", "500", "503"):
                headers = {"Retry-After": str(server.retry_after)} if fault in ("429", "503") else {}
                return self._send(int(fault), b"busy", "text/plain", headers)
            if fault in ("timeout", "hang"):
                time.sleep(server.timeout_s if fault == "timeout" else server.hang_s)
            if kind == "api":
                if path == "/flickr/services/rest/":
                    body = json.dumps(server.flickr_search(q)).encode()
                elif path == "/commons/w/api.php":
                    body = json.dumps(server.commons_query(q)).encode()
                else:
                    return self._send(404, b"not found", "text/plain")
                if fault == "malformed-json":
                    body = body[: len(body) // 2]
                return self._send(200, body, "application/json", truncate=fault == "truncate")
            _img, item_id, name = path.split("/", 3)[1:] if path.count("/") == 3 else ("", "", "")
            it = server._by_id.get(item_id)
            if it is None:
                return self._send(404, b"no such image", "text/plain")
            if fault == "non-image" or it.kind == "html":
                return self._send(200, b"<html><body>Photo unavailable</body></html>", "text/html")
            body = server.variant(it, name.rsplit(".", 1)[0])
            mime = "image/png" if it.ext == "png" else "image/jpeg"
            return self._send(200, body, mime, truncate=fault == "truncate")

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
                  truncate: bool = False) -> None:
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
