"""Image conversions every stage shares: 16-bit grey to 8 bits, any mode to RGB for models."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_8bit(im: Any) -> Any:
    """A 16-bit grey image (PNG) as 8-bit grey, top byte kept; other images unchanged. PIL's own ``convert`` clips
    such images at 255 (white), which every pixel statistic and model would then see."""
    if im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return im
    from PIL import Image

    return Image.fromarray((np.clip(np.asarray(im, np.int64), 0, 65535) >> 8).astype(np.uint8))


def to_rgb(im: Any) -> Any:
    """RGB for the VLM: 16-bit grey scaled to 8 bits (``to_8bit``), transparency composited onto white (as
    qwen-vl-utils' ``to_rgb`` does; a bare ``convert("RGB")`` shows whatever colour hides under transparent pixels,
    often black: a black logo on black)."""
    from PIL import Image


    im = to_8bit(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im, mask=im.getchannel("A"))
        return white
    return im.convert("RGB")


# libjpeg warnings that mean entropy-coded data is missing or damaged: the decoder then fills the rest with grey
# and Pillow and OpenCV return the image without complaint. A JPEG cut and closed again with its end marker gives
# "Corrupt JPEG data: premature end of data segment".
JPEG_DAMAGE = ("premature end", "bad huffman code", "huffman table")


class CorruptJpegError(ValueError):
    """A JPEG whose entropy-coded data is truncated or damaged (libjpeg only warns about it)."""


def open_header(data: bytes) -> Any:
    """PIL image of JPEG/PNG bytes with only the header parsed and without Pillow's decompression-bomb check, for
    callers that check the pixel count themselves before decoding (other formats go through ``Image.open``)."""
    import io

    from PIL import Image

    Image.preinit()
    head = bytes(data[:16])
    for fmt in ("JPEG", "PNG"):
        factory, accept = Image.OPEN[fmt]
        if accept(head):
            return factory(io.BytesIO(data), "")
    return Image.open(io.BytesIO(data))


def jpeg_luma(data: bytes, height: int, width: int, factor: int) -> np.ndarray | None:
    """Grayscale of a JPEG at 1/factor (ceil) through libjpeg-turbo's DCT scaling, with libjpeg's warnings checked:
    CorruptJpegError for truncated or damaged entropy-coded data; None when this decoder cannot read it (the caller
    falls back to PIL)."""
    import simplejpeg

    size = {"min_height": -(-height // factor), "min_width": -(-width // factor)}
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True, **size)
    except ValueError as exc:
        if any(w in str(exc).lower() for w in JPEG_DAMAGE):
            raise CorruptJpegError(f"corrupt JPEG data ({exc})") from None
        try:  # another libjpeg warning (e.g. extraneous bytes before a marker): the pixels are whole
            arr = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=False, **size)
        except (ValueError, RuntimeError):
            return None
    except RuntimeError:
        return None
    return arr[..., 0] if arr.ndim == 3 else arr


def jpeg_check(data: bytes) -> tuple[bool, str | None]:
    """(decoded, damage) of JPEG bytes: libjpeg-turbo decodes luma at 1/8 scale, which still reads and checks every
    entropy-coded block of every component (only the inverse DCT is cheaper; it cannot fail), so a whole JPEG is
    fully checked at ~2/3 of a full decode's cost. damage is libjpeg's warning for truncated or damaged data;
    decoded is False when this decoder cannot read the file at all (not a JPEG, CMYK...): ask PIL then."""
    import simplejpeg

    if not data.startswith(b"\xff\xd8"):
        return False, None
    try:
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
        arr = jpeg_luma(data, height, width, 8)
    except CorruptJpegError as exc:
        return True, str(exc)
    except (ValueError, RuntimeError):
        return False, None
    return arr is not None, None


def jpeg_damage(data: bytes) -> str | None:
    """Why a JPEG's entropy-coded data is truncated or damaged (libjpeg's warning), or None (see `jpeg_check`)."""
    return jpeg_check(data)[1]
