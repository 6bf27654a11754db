"""The quality filter's fast decoding routes give the pixels and sizes of the PIL reference: libspng for 8-bit grey
and RGB PNGs (anything else or any damaged chunk goes to PIL), libjpeg's header for JPEG sizes, and the exact top
quantile of the blur statistics."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from gpic_lab.filters import pixels, quality


def _png(mode: str, size: tuple[int, int] = (300, 220), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + (() if mode in ("L", "P", "I;16") else (len(mode),))
    arr = rng.integers(0, 255, shape).astype(np.uint16 if mode == "I;16" else np.uint8)
    im = Image.fromarray(arr, mode) if mode != "I;16" else Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_libspng_pixels_are_pils(mode: str) -> None:
    data = _png(mode)
    got = pixels.png_pixels(data, 300, 220)
    assert got is not None and np.array_equal(got, np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("mode", ["P", "RGBA", "I;16"])
def test_other_pngs_go_to_pil(mode: str) -> None:
    assert pixels.png_pixels(_png(mode), 300, 220) is None


def test_a_damaged_or_cut_png_goes_to_pil_and_stays_undecodable() -> None:
    data = _png("RGB")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10  # inside IDAT: that chunk's CRC no longer matches
    cut = data[: len(data) - 200]
    for bad in (bytes(flipped), cut, data[:-12]):  # ... and one without its IEND chunk
        assert not pixels.png_chunks_ok(bad) and pixels.png_pixels(bad, 300, 220) is None
    assert quality.check_image(bytes(flipped))[0] == quality.check_image(bytes(flipped), reduced=False)[0]
    assert quality.check_image(cut)[0] == "undecodable"


def test_png_decisions_and_scores_equal_the_reference() -> None:
    rng = np.random.default_rng(3)
    for i in range(6):
        arr = np.clip(rng.normal(120, 40 - 6 * i, (400, 520, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        fast, slow = quality.check_image(buf.getvalue()), quality.check_image(buf.getvalue(), reduced=False)
        assert fast[0] == slow[0]
        assert fast[1] == pytest.approx(slow[1], nan_ok=True)


def test_jpeg_size_is_pils_and_refuses_what_is_not_a_jpeg() -> None:
    from conftest import make_image

    for w, h in ((320, 240), (257, 1000), (801, 33)):
        data = make_image(w, w, h)
        assert pixels.jpeg_size(data) == Image.open(io.BytesIO(data)).size
    assert pixels.jpeg_size(_png("RGB")) is None and pixels.jpeg_size(b"\xff\xd8\xff" + b"\0" * 10) is None


def test_high_quantile_is_the_partition_it_replaces() -> None:
    rng = np.random.default_rng(0)
    for t in range(400):
        h, w = (int(x) for x in rng.integers(1, 80, 2))
        values = (rng.integers(0, 4, (h, w)) if t % 2 else rng.random((h, w))).astype(np.float32)
        for q in (0.999, 0.9, 0.5):
            k = min(values.size - 1, int(values.size * q))
            assert quality._high_quantile(values, q) == float(np.partition(values.ravel(), k)[k])


def test_crc_walk_accepts_a_clean_png_and_names_iend() -> None:
    data = _png("L")
    assert pixels.png_chunks_ok(data)
    iend = data.rindex(b"IEND")
    assert zlib.crc32(data[iend:iend + 4]) == int.from_bytes(data[iend + 4:iend + 8], "big")
