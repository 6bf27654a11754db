"""What the replay server lists and serves: real sample-corpus images as Flickr photos and Commons files, and a bulk
catalog of tiny distinct images for collections past Flickr's 4,000-result cap.

Flickr size availability follows Flickr: every uncropped size up to the original's long side, the two square crops
(sq 75 px, q 150 px), and the original unless the owner restricts it (then nothing above 1024 px either).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

_COMMONS_LICENSES = [  # (LicenseShortName, LicenseUrl) as Commons extmetadata gives them
    ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0"), ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0"),
    ("Public domain", ""), ("CC0", "http://creativecommons.org/publicdomain/zero/1.0/deed.en"),
    ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0"), ("GFDL", "http://www.gnu.org/copyleft/fdl.html"),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0"), ("CC BY 3.0 de", "https://creativecommons.org/licenses/by/3.0/de/deed.en"),
]
# Flickr's size variants as https://www.flickr.com/services/api/misc.urls.html documents them: extras name -> (URL
# suffix, longest side in px, square crop). The server keeps its own copy on purpose: it is the oracle the client's
# table (gpic_lab.collect.flickr.SIZE_TABLE) is tested against, so a wrong client table cannot hide behind it.
FLICKR_SIZES: dict[str, tuple[str, int | None, bool]] = {
    "sq": ("s", 75, True), "q": ("q", 150, True), "t": ("t", 100, False), "s": ("m", 240, False),
    "n": ("n", 320, False), "w": ("w", 400, False), "m": ("", 500, False), "z": ("z", 640, False),
    "c": ("c", 800, False), "l": ("b", 1024, False), "h": ("h", 1600, False), "k": ("k", 2048, False),
    "3k": ("3k", 3072, False), "4k": ("4k", 4096, False), "f": ("f", 4096, False), "5k": ("5k", 5120, False),
    "6k": ("6k", 6144, False), "o": ("o", None, False),
}
OWN_WORK = '<span class="int-own-work" lang="en">Own work</span>'  # how Commons renders the Credit (source) field


@dataclass
class ReplayItem:
    """One listed photo/file.

    kind: image (bytes served), html (a non-image body is served), pdf / svg / tiff (Commons originals that are
    not JPEG/PNG; svg and tiff render PNG / JPEG thumbnails from `body`). restricted: a Flickr owner withholding
    the original (and sizes above 1024 px). sizes: explicit Flickr extras sizes instead of Flickr's rule.
    meta: Commons extmetadata overrides (a None value removes the field). thumb_error: thumbnailing fails.
    """

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
    restricted: bool = False
    sizes: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    thumb_error: bool = False
    _dims: tuple[int, int] | None = field(default=None, repr=False)

    def dims(self) -> tuple[int, int]:
        if self._dims is None:
            from PIL import Image

            self._dims = Image.open(io.BytesIO(self.body)).size if self.kind != "html" else (640, 480)
        return self._dims

    def flickr_sizes(self) -> tuple[str, ...]:
        """Extras size names Flickr would list for this photo."""
        if self.sizes is not None:
            return self.sizes
        longest = max(self.dims())
        out = []
        for name, (_suffix, px, crop) in FLICKR_SIZES.items():
            if name == "o":
                continue
            if crop or (px is not None and px <= longest and not (self.restricted and px > 1024)):
                out.append(name)
        return (*out, *(() if self.restricted else ("o",)))


def encode(img: Any, ext: str) -> bytes:
    """PIL image -> JPEG (quality 90) / PNG / TIFF bytes."""
    buf = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "tif": "TIFF"}[ext]
    img.save(buf, fmt, **({"quality": 90} if ext == "jpg" else {}))
    return buf.getvalue()


def default_catalog(sample: str | None = None) -> list[ReplayItem]:
    """A deterministic catalog from the sample corpus's real images: 26 Flickr photos (one byte-duplicate pair,
    one whose owner restricts the original, one serving HTML) and 16 Commons files (mixed licenses, one PDF) plus
    the Commons specials of `commons_specials`."""
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
        items.append(ReplayItem(f"5{i:09d}", "flickr", encode(variant, "jpg"), "jpg", str(flickr_ids[i % len(flickr_ids)]),
                                "", f"Photographer {i % 5}", f"Photo {i}", 1_600_000_000 + 86_400 * i))
    items[3].restricted = True  # the owner withholds the original
    items[5].body = items[4].body  # an exact byte duplicate under another photo id
    items[8].kind = "html"  # the image URL answers with an HTML page
    for j, img in enumerate(originals + originals[:3]):
        crop = img.crop((0, 0, max(64, img.width * 3 // 4), max(64, img.height * 3 // 4)))
        ext = "png" if j % 4 == 0 else "jpg"
        short, url = _COMMONS_LICENSES[j % len(_COMMONS_LICENSES)]
        artist = f'<a href="//commons.wikimedia.org/wiki/User:Uploader{j}" title="User:Uploader{j}">Uploader {j}</a>'
        items.append(ReplayItem(f"{7000 + j}", "wikimedia", encode(crop, ext), ext, short, url, artist,
                                f"Sample file {j:02d}", 1_500_000_000 + j, ("Sample images",)))
    items[-1].kind = "pdf"
    return items + commons_specials(originals)


def commons_specials(originals: list[Any]) -> list[ReplayItem]:
    """Commons files that exercise the metadata and thumbnail rules, titled 'Special ...' (listed after the
    'Sample file' ones): an SVG and a TIFF (PNG / JPEG thumbnails), a file whose thumbnail fails, a file without
    Artist but with an Attribution line, one with neither (only Credit, the source), a NonFree file, and one with
    a personality-rights restriction. All CC BY 4.0 unless said otherwise."""
    url = "https://creativecommons.org/licenses/by/4.0"
    specs = [("svg", {}, False, "Special drawing"), ("tiff", {}, False, "Special scan"),
             ("image", {}, True, "Special huge"),
             ("image", {"Artist": None, "Attribution": "Photo: Studio Attribution, CC BY 4.0"}, False,
              "Special attribution"),
             ("image", {"Artist": None}, False, "Special credit only"),
             ("image", {"NonFree": "true"}, False, "Special nonfree"),
             ("image", {"Restrictions": "personality"}, False, "Special portrait")]
    out = []
    for n, (kind, meta, thumb_error, title) in enumerate(specs):
        img = originals[(n * 5 + 2) % len(originals)].rotate(90, expand=True)
        ext = {"svg": "svg", "tiff": "tif"}.get(kind, "jpg")
        author = f"Special Author {n}"
        out.append(ReplayItem(f"{7100 + n}", "wikimedia", encode(img, "png" if kind == "svg" else "jpg"), ext,
                              "CC BY 4.0", url, author, title, 1_500_001_000 + n, ("Special files",), kind=kind,
                              meta=meta, thumb_error=thumb_error))
    return out


def bulk_flickr_catalog(n: int, start: int = 1_600_000_000, burst: int = 0, seed: int = 0) -> list[ReplayItem]:
    """n Flickr photos with tiny distinct JPEGs (16 x 12 px), permissive licenses, three photos per upload second,
    plus (with burst > 0) a run of `burst` photos sharing one upload second in the middle."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ids = (4, 9, 10, 7, 8, 11)
    items = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        body = encode(Image.fromarray(pixels, "RGB"), "jpg")
        second = start + (i // 3) * 7
        items.append(ReplayItem(f"6{i:09d}", "flickr", body, "jpg", str(ids[i % len(ids)]), "",
                                f"Bulk Photographer {i % 11}", f"Bulk {i}", second))
    if burst:
        mid = start + (n // 2 // 3) * 7 + 3
        for it in items[n // 2: n // 2 + burst]:
            it.uploaded = mid
    return items


def bulk_commons_catalog(n: int, seed: int = 0, size: tuple[int, int] = (24, 18)) -> list[ReplayItem]:
    """n Commons files (CC BY 4.0, category 'Bulk files') with tiny distinct JPEGs, for batches past the API's 50
    thumbnails per request."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    url = "https://creativecommons.org/licenses/by/4.0"
    items = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        items.append(ReplayItem(f"{90000 + i}", "wikimedia", encode(Image.fromarray(pixels, "RGB"), "jpg"), "jpg",
                                "CC BY 4.0", url, f"Bulk Author {i % 13}", f"Bulk file {i:05d}", 1_500_000_000 + i,
                                ("Bulk files",)))
    return items
