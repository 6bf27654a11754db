"""The replay server's API answers, shaped like the real ones (formatversion=2 for Commons, nojsoncallback JSON for
Flickr), including their documented awkward behaviours:

Flickr flickr.photos.search: `total` as a string; at most `cap` (4,000) results per query, past which pages repeat
(cap_mode "repeat") or error 20 "Excessive photo offset in search" (cap_mode "error"); pages that shift between
requests (`drift`: page N > 1 starts `drift` photos early, so photos repeat on the next page and the last ones are
never reached by offsets) and equal upload times in a different order on every request (`unstable`); code 3 for a
parameterless search; code 100 for a bad key.

Commons action=query + prop=imageinfo: at most 50 thumbnails per request, then `iicontinue` over the same batch
without `batchcomplete` (MediaWiki's ApiQueryImageInfo::TRANSFORM_LIMIT); `thumbmime` only when asked for;
`thumberror` instead of `thumburl` when thumbnailing fails; extmetadata filtered by iiextmetadatafilter, with
Artist / Attribution / Credit / AttributionRequired / Copyrighted / NonFree / Restrictions as CommonsMetadata gives
them.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

from gpic_lab.collect.replay_catalog import FLICKR_SIZES, OWN_WORK, ReplayItem

if TYPE_CHECKING:
    from gpic_lab.collect.replay import ReplayServer

TRANSFORM_LIMIT = 50
SUFFIX_TO_SIZE = {suffix: name for name, (suffix, _px, _crop) in FLICKR_SIZES.items()}
MIMES = {"jpg": "image/jpeg", "png": "image/png", "svg": "image/svg+xml", "tif": "image/tiff", "pdf": "application/pdf"}
_FILTERS = ("text", "tags", "min_upload_date", "max_upload_date", "min_taken_date", "max_taken_date", "user_id")


def flickr_url(server: ReplayServer, it: ReplayItem, size: str) -> str:
    """Flickr's static URL shape: <id>_<secret>[_<suffix>].jpg (extras m has no suffix; l is _b; o is _o)."""
    suffix = FLICKR_SIZES[size][0]
    return f"{server.url}/img/{it.id}/{it.id}_abc{'_' + suffix if suffix else ''}.{it.ext}"


def flickr_search(server: ReplayServer, q: dict[str, str]) -> dict[str, Any]:
    if q.get("api_key") != server.api_key:
        return {"stat": "fail", "code": 100, "message": "Invalid API Key (Key not found)"}
    if q.get("method") != "flickr.photos.search":
        return {"stat": "fail", "code": 112, "message": f"Method \"{q.get('method')}\" not found"}
    if not any(q.get(k) for k in _FILTERS):
        return {"stat": "fail", "code": 3, "message": "Parameterless searches have been disabled. Please use "
                                                        "flickr.photos.getRecent instead."}
    rows = _flickr_rows(server, q)
    per_page, page = max(1, min(500, int(q.get("per_page", 100)))), max(1, int(q.get("page", 1)))
    offset = (page - 1) * per_page
    if offset >= server.flickr_cap:
        if server.cap_mode == "error":
            return {"stat": "fail", "code": 20, "message": "Excessive photo offset in search"}
        offset = max(0, (server.flickr_cap // per_page - 1) * per_page)  # the last page under the cap, again
    if page > 1 and server.drift:
        offset = max(0, offset - server.drift)
    chunk = rows[offset: offset + per_page]
    extras = {x.strip() for x in q.get("extras", "").split(",")}
    total = len(rows)
    return {"photos": {"page": page, "pages": (total + per_page - 1) // per_page, "perpage": per_page,
                       "total": str(total) if server.total_as_string else total,
                       "photo": [_flickr_photo(server, it, extras) for it in chunk]}, "stat": "ok"}


def _flickr_rows(server: ReplayServer, q: dict[str, str]) -> list[ReplayItem]:
    ids = {int(x) for x in q.get("license", "").split(",") if x.strip()}
    lo, hi = int(q.get("min_upload_date") or 0), int(q.get("max_upload_date") or 2**62)
    rows = [it for it in server.items if it.source == "flickr" and (not ids or int(it.license) in ids)
            and lo <= it.uploaded <= hi]
    if server.unstable:  # equal upload times come back in a different order on every request
        with server.lock:
            server.requests_seen += 1
            rng = random.Random(server.requests_seen)
        rng.shuffle(rows)
        return sorted(rows, key=lambda it: it.uploaded)
    return sorted(rows, key=lambda it: (it.uploaded, it.id))


def _flickr_photo(server: ReplayServer, it: ReplayItem, extras: set[str]) -> dict[str, Any]:
    """One search row; like Flickr, url_<s>/width_<s>/height_<s> only for requested url_<s> extras of sizes the photo
    has, o_width/o_height with o_dims."""
    row: dict[str, Any] = {"id": it.id, "owner": f"{int(it.id) % 97}@N00", "secret": "abc", "server": "65535",
                           "farm": 66, "title": it.title, "ispublic": 1, "isfriend": 0, "isfamily": 0}
    for extra, fields in (("license", {"license": it.license}), ("owner_name", {"ownername": it.author}),
                          ("date_upload", {"dateupload": str(it.uploaded)})):
        if extra in extras:
            row.update(fields)
    for size in it.flickr_sizes():
        if f"url_{size}" in extras:
            w, h = flickr_dims(it, size)
            row.update({f"url_{size}": flickr_url(server, it, size), f"height_{size}": h, f"width_{size}": w})
    if "o_dims" in extras:
        row["o_width"], row["o_height"] = (str(d) for d in it.dims())
    return row


def flickr_dims(it: ReplayItem, size: str) -> tuple[int, int]:
    """(width, height) of a size variant: crops are squares, others cap the long side."""
    w, h = it.dims()
    _suffix, px, crop = FLICKR_SIZES[size]
    if crop:
        return px, px
    if px is None or max(w, h) <= px:
        return w, h
    scale = px / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def commons_query(server: ReplayServer, q: dict[str, str]) -> dict[str, Any]:
    gen = q.get("generator")
    files = sorted((it for it in server.items if it.source == "wikimedia"), key=file_key)
    if gen == "categorymembers":
        cat = q.get("gcmtitle", "").removeprefix("Category:")
        files = [it for it in files if cat in it.categories]
        limit, token = int(q.get("gcmlimit", 10)), "gcmcontinue"
    elif gen == "allimages":
        limit, token = int(q.get("gailimit", 10)), "gaicontinue"
        files = [it for it in files if file_key(it) >= q.get("gaifrom", "").replace(" ", "_")]
    else:
        return {"error": {"code": "badvalue", "info": f"Unrecognized value for parameter \"generator\": {gen}"}}
    if q.get(token):
        files = [it for it in files if file_key(it) >= q[token]]
    chunk, rest = files[:limit], files[limit:]
    pages, ii_next = _commons_pages(server, chunk, q)
    out: dict[str, Any] = {"query": {"pages": pages}}
    if ii_next:  # property continuation: same batch again, generator not advanced, no batchcomplete
        out["continue"] = {"iicontinue": ii_next, **({token: q[token]} if q.get(token) else {}),
                           "continue": "||"}
        return out
    out["batchcomplete"] = True
    if rest:
        out["continue"] = {token: file_key(rest[0]), "continue": f"{token}||"}
    return out


def _commons_pages(server: ReplayServer, chunk: list[ReplayItem], q: dict[str, str]) -> tuple[list, str | None]:
    """The batch's pages; imageinfo from iicontinue on, at most TRANSFORM_LIMIT thumbnails; the next iicontinue."""
    start = q.get("iicontinue", "").split("|", 1)[0]
    thumb = q.get("iiurlwidth")
    pages, transforms, ii_next = [], 0, None
    for it in chunk:
        page: dict[str, Any] = {"pageid": int(it.id), "ns": 6, "title": file_title(it)}
        pages.append(page)
        if ii_next or file_key(it) < start:
            continue
        if thumb and transforms >= TRANSFORM_LIMIT:
            ii_next = f"{file_key(it)}|20200101000000"
            continue
        page["imagerepository"] = "local"
        page["imageinfo"] = [_imageinfo(server, it, q)]
        transforms += bool(thumb)
    return pages, ii_next


def file_key(it: ReplayItem) -> str:
    """The file's DB key (title without namespace, underscores)."""
    ext = "pdf" if it.kind == "pdf" else it.ext
    return f"{it.title.replace(' ', '_')}.{ext}"


def file_title(it: ReplayItem) -> str:
    return "File:" + file_key(it).replace("_", " ")


def thumb_ext(it: ReplayItem) -> str:
    """A thumbnail's format: PNG for SVG, JPEG for TIFF and PDF, else the original's."""
    return {"svg": "png", "tiff": "jpg", "pdf": "jpg"}.get(it.kind, it.ext)


def _imageinfo(server: ReplayServer, it: ReplayItem, q: dict[str, str]) -> dict[str, Any]:
    w, h = it.dims()
    props = set(q.get("iiprop", "").split("|"))
    info: dict[str, Any] = {"size": len(server.original(it)), "width": w, "height": h,
                            "url": f"{server.url}/img/{it.id}/o.{file_key(it).rsplit('.', 1)[1]}",
                            "descriptionurl": f"https://commons.wikimedia.org/wiki/File:{file_key(it)}",
                            "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={it.id}",
                            "mime": MIMES["pdf" if it.kind == "pdf" else it.ext],
                            "sha1": hashlib.sha1(server.original(it)).hexdigest(),
                            "extmetadata": _extmetadata(it, q.get("iiextmetadatafilter"))}
    width, height = q.get("iiurlwidth"), q.get("iiurlheight")
    if width and width.isdigit():
        if it.thumb_error:
            info["thumberror"] = "Error creating thumbnail: File with dimensions greater than 12.5 MP"
            return info
        box_h = int(height) if height and height.isdigit() else None
        tw, th = fit_box(w, h, int(width), box_h)
        info.update(thumburl=f"{server.url}/img/{it.id}/{tw}px-thumb.{thumb_ext(it)}", thumbwidth=tw, thumbheight=th)
        if "thumbmime" in props:
            info["thumbmime"] = MIMES[thumb_ext(it)]
    return info


def fit_box(w: int, h: int, box_w: int, box_h: int | None) -> tuple[int, int]:
    """MediaWiki's thumbnail size: fit (box_w, box_h), never upscale a bitmap."""
    scale = min(1.0, box_w / w, *((box_h / h,) if box_h else ()))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _extmetadata(it: ReplayItem, wanted: str | None) -> dict[str, Any]:
    pd = it.license.lower() in ("public domain", "cc0")
    usage = "Public domain" if it.license.lower() == "public domain" else it.license
    fields = {"LicenseShortName": it.license, "UsageTerms": usage, "Artist": it.author, "Credit": OWN_WORK,
              "ObjectName": it.title, "AttributionRequired": "false" if pd else "true",
              "Copyrighted": "False" if usage == "Public domain" else "True", "Restrictions": ""}
    if it.license_url:
        fields["LicenseUrl"] = it.license_url
    fields.update(it.meta)
    names = set(wanted.split("|")) if wanted else set(fields)
    return {k: {"value": v, "source": "commons-desc-page", "hidden": ""} for k, v in fields.items()
            if v is not None and k in names}
