"""Decoding for the quality filter: an image's luma (and, for near-flat luma, its colour) at the analysis size, by
the fastest route that gives the filter's pixels: libjpeg-turbo's DCT-scaled luma for JPEGs, libspng for common
PNGs, PIL for everything else and for the full-resolution reference (see `gpic_lab.filters.quality`)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from gpic_lab.core.images import CorruptJpegError, jpeg_damage, jpeg_luma, to_8bit


def analysis_factor(width: int, height: int, side: int) -> int:
    """The largest power-of-two factor (1, 2, 4 or 8: libjpeg's DCT scales) that keeps the longest side >= side."""
    factor, longest = 1, max(width, height)
    while factor < 8 and -(-longest // (2 * factor)) >= side:
        factor *= 2
    return factor


def _scaled(im: Any, mode: str, side: int, reduced: bool) -> tuple[Any, int]:
    """``im`` in ``mode`` at the analysis size: 1/factor of the original (ceil), box-resized to ``side`` when an image
    is so large that even 1/8 stays >= 2 * side. JPEGs with ``reduced`` get the factor from the DCT (no full decode);
    everything else is decoded fully and box-reduced by the same factor, giving the same size."""
    width, height = im.size
    factor = analysis_factor(width, height, side)
    if reduced and im.format == "JPEG" and factor > 1:
        im.draft(mode, (width // factor, height // factor))
    out = to_8bit(im).convert(mode)
    done = round(width / out.size[0]) if out.size[0] else 1  # DCT factor already applied (sizes are ceil)
    if factor > done:
        out = out.reduce(factor // done)
    if max(out.size) >= 2 * side:
        from PIL import Image

        f = side / max(out.size)
        out = out.resize((max(1, round(out.size[0] * f)), max(1, round(out.size[1] * f))), Image.Resampling.BOX)
    return out, factor


def _cv2_luma(data: bytes, fmt: str | None, width: int, height: int, factor: int) -> np.ndarray | None:
    """Grayscale at 1/factor through libjpeg-turbo's DCT-scaled decode (simplejpeg: the same pixels as OpenCV's
    IMREAD_REDUCED_GRAYSCALE_N, measured bit-identical, plus libjpeg's warnings, so a JPEG cut and closed again
    with its end marker raises CorruptJpegError instead of decoding grey). JPEG only: PNG has no reduced decode and
    PIL decodes it as fast. None when it does not apply: not a JPEG, factor 1, no EOI marker at the end (truncated
    files must fail in PIL's strict decoder) or an unexpected size."""
    if fmt != "JPEG" or factor == 1 or not data[-16:].rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    arr = jpeg_luma(data, height, width, factor)
    return arr if arr is not None and arr.shape == (-(-height // factor), -(-width // factor)) else None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header through libjpeg-turbo (no PIL image object), or None when the
    data is not a JPEG PIL would open as one or libjpeg cannot read the header (the caller then asks PIL)."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    import simplejpeg

    try:
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
    except (ValueError, RuntimeError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def reduced_jpeg_luma(data: bytes, width: int, height: int, side: int) -> tuple[np.ndarray, float] | None:
    """The ``reduced`` luma of a complete JPEG at the analysis size and its decode scale (see ``analysis_luma``), or
    None when the DCT-scaled decode does not apply (factor 1, no end marker, an unexpected size)."""
    factor = analysis_factor(width, height, side)
    arr = _cv2_luma(data, "JPEG", width, height, factor)
    if arr is None:
        return None
    if max(arr.shape) >= 2 * side:
        import cv2

        f = side / max(arr.shape)
        arr = cv2.resize(arr, (max(1, round(arr.shape[1] * f)), max(1, round(arr.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
    return arr, 1.0 / factor


def png_chunks_ok(data: bytes) -> bool:
    """Every chunk's CRC matches and the chunks end with IEND (pyspng decodes despite CRC errors; PIL refuses)."""
    import zlib

    pos, end = 8, len(data)
    while pos + 12 <= end:
        size = int.from_bytes(data[pos:pos + 4], "big")
        stop = pos + 8 + size
        if stop + 4 > end or zlib.crc32(data[pos + 4:stop]) != int.from_bytes(data[stop:stop + 4], "big"):
            return False
        if data[pos + 4:pos + 8] == b"IEND":
            return True
        pos = stop + 4
    return False


def png_pixels(data: bytes, width: int, height: int) -> np.ndarray | None:
    """An 8-bit grey or RGB PNG decoded by libspng (pyspng): bit-identical to PIL's decode for these colour types.
    None for any other PNG (palette, 16-bit, alpha), a chunk whose CRC does not match, no IEND, or any decoding
    error: the caller decodes with PIL, which then decides what a damaged file is."""
    if len(data) < 33 or data[12:16] != b"IHDR" or data[24] != 8 or data[25] not in (0, 2):
        return None
    if not png_chunks_ok(data):
        return None
    import pyspng

    try:
        arr = pyspng.load(data)
    except Exception:  # noqa: BLE001 - anything libspng refuses goes to PIL
        return None
    channels = 1 if data[25] == 0 else 3
    if arr.dtype != np.uint8 or arr.shape[:2] != (height, width) or (arr.shape[2] if arr.ndim == 3 else 1) != channels:
        return None
    return arr[..., 0] if arr.ndim == 3 and channels == 1 else arr


def analysis_luma(im: Any, side: int, reduced: bool = True, data: bytes | None = None) -> tuple[np.ndarray, float]:
    """Grayscale (luma) uint8 array at the analysis size (see ``_scaled``) and the decode scale (1 = full decode).

    ``reduced`` lets libjpeg decode only the luma plane at 1/2, 1/4 or 1/8 scale (through OpenCV when the encoded
    ``data`` is given and complete, else through PIL's ``draft``); ``reduced=False`` is the reference: PIL full
    decode, then a box reduction.
    """
    width, height = im.size
    if reduced and data is not None and im.format == "JPEG":
        fast = reduced_jpeg_luma(data, width, height, side)
        if fast is not None:
            return fast
    if im.format == "JPEG" and data is not None:  # PIL fills damaged entropy-coded data with grey: ask libjpeg
        damage = jpeg_damage(data)
        if damage:
            raise CorruptJpegError(damage)
    out, _factor = _scaled(im, "L", side, reduced)
    return np.asarray(out), (im.size[0] / width if im.size[0] else 1.0)


def png_luma(pixels: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The luma at the analysis size of PNG pixels decoded by `png_pixels`: PIL's conversion and reduction of the
    same pixels, so the same values as ``analysis_luma`` gives from PIL's own decode."""
    from PIL import Image

    out, _factor = _scaled(Image.fromarray(pixels), "L", side, True)
    return np.asarray(out), 1.0


def chroma_std(data: bytes, side: int, reduced: bool = True, pixels: np.ndarray | None = None) -> float:
    """Largest per-channel RGB standard deviation at analysis size (only run for near-flat luma); ``pixels``: the
    image already decoded (a PNG through `png_pixels`), not decoded again."""
    import cv2
    from PIL import Image

    im = Image.fromarray(pixels) if pixels is not None else Image.open(io.BytesIO(data))
    factor = analysis_factor(*im.size, side)
    if reduced and im.format == "JPEG" and factor > 1 and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None:
            return float(cv2.meanStdDev(arr)[1].max())
    rgb, _factor = _scaled(im, "RGB", side, reduced)
    hist = np.asarray(rgb.histogram(), dtype=np.float64).reshape(3, 256)
    return float(max(hist_moments(h)[1] for h in hist))


_LEVELS = np.arange(256, dtype=np.float64)


def hist_moments(hist: np.ndarray) -> tuple[float, float]:
    n = max(hist.sum(), 1.0)
    mean = float(hist @ _LEVELS / n)
    return mean, float(np.sqrt(max(hist @ (_LEVELS - mean) ** 2 / n, 0.0)))
