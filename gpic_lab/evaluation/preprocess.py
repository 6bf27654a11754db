"""GPIC evaluation preprocessing, exactly as the protocol (GPIC App. B.1 + dgm-eval's DINOv2 transform).

Reference (real) images: `.convert("RGB")`, center crop to a square along the longer side, Pillow bicubic to
256x256 ("GPIC-256"). Then every image (real or generated): Pillow bicubic *stretch* to 224x224 (no crop, aspect
not preserved; torchvision `Resize((224, 224), BICUBIC)` on a PIL image is exactly this), `ToTensor` ([0, 1] in
float32, x / 255) and `Normalize(ImageNet mean, std)` in float32. Never the transformers image processor
(shortest-edge resize + center crop).
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from gpic_lab.models.dinov2_input import (
    DINO_SIZE,
    MEAN,
    STD,
    dino_batch,
    normalize,
    normalize_torch,
    resize_224,
)

__all__ = ["DINO_SIZE", "MEAN", "REF_SIZE", "STD", "center_crop_square", "decode_generated", "decode_reference",
           "dino_batch", "normalize", "normalize_torch", "reference_256", "reference_batch", "resize_224"]

REF_SIZE = 256


def center_crop_square(img: Any) -> Any:
    """Crop the longer side to the shorter one, centered (left/top offset rounded down)."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img if w == h else img.crop((left, top, left + s, top + s))


def reference_256(img: Any) -> Any:
    """GPIC-256 for real images: RGB, center crop to square, Pillow bicubic to 256x256."""
    from PIL import Image

    img = center_crop_square(img.convert("RGB"))
    return img if img.size == (REF_SIZE, REF_SIZE) else img.resize((REF_SIZE, REF_SIZE), Image.BICUBIC)


def decode_reference(data: bytes) -> np.ndarray:
    """Encoded real image bytes -> GPIC-256 -> 224 stretch, uint8 HWC (thread-friendly: PIL releases the GIL)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return resize_224(reference_256(img))


def decode_generated(data: bytes) -> np.ndarray:
    """Encoded generated image bytes -> RGB -> 224 stretch, uint8 HWC."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return resize_224(img)


def reference_batch(blobs: list[bytes], pool: ThreadPoolExecutor | None = None,
                    reference: bool = True) -> np.ndarray:
    """Decode + preprocess encoded images (optionally on a thread pool) to float32 [N, 3, 224, 224]. With a pool each
    thread also normalises its own images into the output (numpy releases the GIL for these element-wise float32
    operations, so the normalisation runs on every thread instead of one; the values are the same bits)."""
    fn = decode_reference if reference else decode_generated
    if pool is None:
        arrays = [fn(b) for b in blobs]
        return normalize(np.stack(arrays)) if arrays else np.empty((0, 3, DINO_SIZE, DINO_SIZE), dtype=np.float32)
    out = np.empty((len(blobs), 3, DINO_SIZE, DINO_SIZE), dtype=np.float32)

    def one(i: int) -> None:
        out[i] = normalize(fn(blobs[i])[None])[0]

    list(pool.map(one, range(len(blobs))))
    return out
