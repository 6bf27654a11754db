"""DINOv2's input transform in the FD-DINOv2 protocol (dgm-eval's transform, which GPIC uses).

Pillow bicubic *stretch* to 224x224 (no crop, aspect not preserved; torchvision ``Resize((224, 224), BICUBIC)``
on a PIL image is exactly this), ``ToTensor`` ([0, 1] in float32, x / 255) and ``Normalize(ImageNet mean, std)``
in float32. Never the transformers image processor (shortest-edge resize + center crop).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

DINO_SIZE = 224


MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)


STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resize_224(img: Any) -> np.ndarray:
    """Pillow bicubic stretch of an RGB image to 224x224, as a uint8 HWC array."""
    from PIL import Image

    img = img.convert("RGB")
    if img.size != (DINO_SIZE, DINO_SIZE):
        img = img.resize((DINO_SIZE, DINO_SIZE), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def normalize(batch_hwc: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W]: x / 255 then (x - mean) / std, all in float32 (torchvision order)."""
    x = batch_hwc.astype(np.float32)
    x /= np.float32(255.0)
    x -= MEAN
    x /= STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def normalize_torch(batch_hwc: Any, dtype: Any = None) -> Any:
    """Same as `normalize` for a uint8 [N, H, W, 3] torch tensor on any device (the same float32 IEEE operations,
    so bit-identical), then cast to `dtype`: lets the GPU do the float work instead of one CPU thread."""
    import torch

    dev = batch_hwc.device  # divisors as device tensors: CUDA turns a Python-scalar divide into a reciprocal multiply
    x = batch_hwc.to(torch.float32).div_(torch.tensor(255.0, device=dev))
    x.sub_(torch.from_numpy(MEAN).to(dev)).div_(torch.from_numpy(STD).to(dev))
    x = x.permute(0, 3, 1, 2).contiguous()
    return x if dtype is None or dtype == torch.float32 else x.to(dtype)


def dino_batch(images: list[Any], threads: int = 1) -> np.ndarray:
    """Protocol DINOv2 input for PIL images (already GPIC-256 or generated 256x256): float32 [N, 3, 224, 224]."""
    if threads > 1 and len(images) > 1:
        with ThreadPoolExecutor(threads) as pool:
            arrays = list(pool.map(resize_224, images))
    else:
        arrays = [resize_224(img) for img in images]
    if not arrays:
        return np.empty((0, 3, DINO_SIZE, DINO_SIZE), dtype=np.float32)
    return normalize(np.stack(arrays))
