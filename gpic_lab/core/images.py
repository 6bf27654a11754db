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
