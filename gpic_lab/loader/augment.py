"""Training and eval image transforms for the loader, on encoded bytes.

`TrainTransform` is GPIC's training augmentation (random square crop of scale [0.8, 1.0] of the shorter side,
resize to 256, optional horizontal flip) on a fast path. OUR ASSUMPTION: GPIC says "crop scale in [0.8, 1.0] of the
original image" then a random square crop; we read the scale as the square's side over the shorter side (not an
area fraction), uniform in [0.8, 1.0]; the flip is off by default (GPIC does not mention one).
JPEGs are decoded by libjpeg-turbo at the smallest SIMD-accelerated DCT scale (1/8, 1/4, 1/2 or 1) that still
leaves the crop at or above the target resolution, so no quality is lost to upsampling; the crop is resized in uint8 with an antialiased (pre-blurred) bilinear filter.
`pil_train_transform` is the plain PIL reference (full decode, PIL bicubic, float tensor) used as a baseline.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpic_lab.core.images import JPEG_DAMAGE, CorruptJpegError


@dataclass(frozen=True, slots=True)
class CropParams:
    """One draw of the augmentation: crop scale (fraction of the shorter side), position, flip."""

    scale: float
    fx: float  # horizontal position of the crop in [0, 1]
    fy: float
    flip: bool


def draw_params(rng: np.random.Generator, scale: tuple[float, float] = (0.8, 1.0), flip: bool = False) -> CropParams:
    """Draw crop parameters (resolution independent, so fast and reference paths crop the same region)."""
    return CropParams(float(rng.uniform(*scale)), float(rng.uniform()), float(rng.uniform()),
                      bool(flip and rng.uniform() < 0.5))


def crop_box(width: int, height: int, p: CropParams) -> tuple[int, int, int, int]:
    """The square crop box (left, top, right, bottom) in pixel coordinates of a width×height image."""
    side = max(1, round(p.scale * min(width, height)))
    left = round(p.fx * (width - side))
    top = round(p.fy * (height - side))
    return left, top, left + side, top + side


def _simd_scale(short: int, need: int) -> int:
    """Largest libjpeg-turbo SIMD scale denominator (8, 4, 2 or 1) that keeps the shorter side >= need. The
    other M/8 scales use plain-C IDCTs and decode slower than a full-size SIMD decode (measured: 6/8 at 0.73x)."""
    return next((d for d in (8, 4, 2) if -(-short // d) >= need), 1)


def _decode_fast(data: bytes, need_short_side: int) -> np.ndarray | None:
    """Decode a JPEG at the smallest SIMD DCT scale whose shorter side is >= need_short_side; None if not a JPEG."""
    import simplejpeg

    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except (ValueError, RuntimeError):
        return None  # let PIL say what is wrong
    _refuse_bomb(width, height)
    d = _simd_scale(min(height, width), need_short_side)
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=True,
                                      min_height=-(-height // d), min_width=-(-width // d))
    except (ValueError, RuntimeError) as exc:
        if any(w in str(exc).lower() for w in JPEG_DAMAGE):  # PIL would fill the missing data with grey
            raise CorruptJpegError(f"corrupt JPEG data ({exc})") from None
        return None  # CMYK and other unusual JPEGs: fall back to PIL


def _refuse_bomb(width: int, height: int) -> None:
    """Pillow's own decompression-bomb refusal, applied before simplejpeg allocates the decoded image."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        raise Image.DecompressionBombError(f"Image size ({width * height} pixels) exceeds limit of {2 * limit} "
                                           "pixels, could be decompression bomb DOS attack.")


def _decode_pil(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _cv2() -> Any:
    """OpenCV limited to one thread, so a loader worker uses exactly one core (honest per-core numbers)."""
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def release_cv2_threads() -> None:
    """Make an already loaded OpenCV single-threaded in this process (no-op otherwise). Call before forking
    DataLoader workers: a worker forked while OpenCV's thread pool exists deadlocks in its first OpenCV call (the
    pool's threads do not survive the fork). `make_loader` and `GpicIterableDataset` call it for you."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Square resize in uint8. Downscaling is antialiased: a Gaussian pre-blur (sigma 0.45·sqrt(f²-1) for a
    factor f) then bilinear, which is ~3x faster than OpenCV's area filter at non-integer factors and within
    ~42-44 dB PSNR of PIL's bicubic (docs/loader.md)."""
    cv2 = _cv2()

    factor = arr.shape[0] / size
    if factor <= 1.0:
        return cv2.resize(arr, (size, size), interpolation=cv2.INTER_CUBIC)
    if factor > 1.05:
        sigma = 0.45 * math.sqrt(factor * factor - 1.0)
        k = 2 * max(1, round(2.0 * sigma)) + 1  # taps to ±2σ (OpenCV's default, ±3σ, costs 5 taps at σ≈0.6)
        kernel = cv2.getGaussianKernel(k, sigma, cv2.CV_32F)
        # GaussianBlur's own kernel, applied by sepFilter2D: the same pixels within ±1 (rounding), 0.26 instead of
        # 0.32 ms on a 445² crop (GaussianBlur is only faster for its built-in 1-2-1 kernel)
        arr = cv2.sepFilter2D(arr, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(arr, (size, size), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True, slots=True)
class TrainTransform:
    """GPIC's training augmentation on encoded bytes → uint8 array [size, size, 3] (HWC)."""

    size: int = 256
    scale: tuple[float, float] = (0.8, 1.0)
    flip: bool = False

    def __call__(self, data: bytes, rng: np.random.Generator) -> np.ndarray:
        return self.apply(data, draw_params(rng, self.scale, self.flip))

    def apply(self, data: bytes, p: CropParams) -> np.ndarray:
        """The transform for one given draw of the crop parameters."""
        arr = _decode_fast(data, math.ceil(self.size / p.scale))
        if arr is None:
            arr = _decode_pil(data)
        left, top, right, bottom = crop_box(arr.shape[1], arr.shape[0], p)
        out = _resize(arr[top:bottom, left:right], self.size)  # OpenCV reads the strided view: no crop copy
        return _cv2().flip(out, 1) if p.flip else out  # 40x faster than copying numpy's reversed view


@dataclass(frozen=True, slots=True)
class Encoded:
    """A sample left encoded for batch decoding on the consumer side (`gpic_lab.loader.batch_decode`): the JPEG bytes and
    the crop draw; `image` holds the already transformed HWC array for what nvJPEG does not read (PNG, CMYK)."""

    data: bytes | None
    params: CropParams
    image: np.ndarray | None = None


_GPU_COLORSPACES = ("YCbCr", "Gray", "RGB")


@dataclass(frozen=True, slots=True)
class DeferredTrainTransform:
    """GPIC's training augmentation with the decode deferred to the consumer: the worker only draws the crop and
    checks the JPEG header (a corrupt header is a decode error here, counted by the loader's policy); the batch is
    decoded, cropped and resized on the GPU by `gpic_lab.loader.batch_decode.BatchDecoder`. Other formats are transformed
    here on the CPU with the same draw."""

    size: int = 256
    scale: tuple[float, float] = (0.8, 1.0)
    flip: bool = False

    def __call__(self, data: bytes, rng: np.random.Generator) -> Encoded:
        import simplejpeg

        p = draw_params(rng, self.scale, self.flip)
        if data.startswith(b"\xff\xd8"):
            try:
                colorspace = simplejpeg.decode_jpeg_header(data)[2]
            except (ValueError, RuntimeError) as exc:
                raise ValueError(f"unreadable JPEG header: {exc}") from exc
            if colorspace in _GPU_COLORSPACES:
                return Encoded(data, p)
        return Encoded(None, p, TrainTransform(self.size, self.scale, self.flip).apply(data, p))


@dataclass(frozen=True, slots=True)
class EvalTransform:
    """GPIC's reference transform: center crop to a square, PIL bicubic to `size` → uint8 HWC."""

    size: int = 256

    def __call__(self, data: bytes, rng: np.random.Generator | None = None) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((self.size, self.size), Image.BICUBIC)
            return np.asarray(img)


def pil_train_transform(img: Any, rng: np.random.Generator, size: int = 256,
                        scale: tuple[float, float] = (0.8, 1.0)) -> np.ndarray:
    """The plain reference on a decoded PIL image: PIL bicubic crop+resize, float32 CHW in [0, 1] (ToTensor)."""
    from PIL import Image

    p = draw_params(rng, scale)
    img = img.convert("RGB")
    img = img.resize((size, size), Image.BICUBIC, box=crop_box(img.width, img.height, p))
    return (np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)
