"""Heuristic image-quality filter (stage ``quality``): GPIC's resolution, aspect and size rules plus cheap pixel
statistics standing in for the VLM quality judge on near-blank, badly exposed and severely blurred images.

Checks run in this order; the first failing one is the drop reason:

==================== ============================================================ ==========================
reason               rule (thresholds are fields of ``QualityThresholds``)         needs pixels
==================== ============================================================ ==========================
undecodable          the image header cannot be parsed, or decoding fails          header / decode
too-small            longest side < ``min_longest_side`` (GPIC: 256)               header only
extreme-aspect       longest / shortest side > ``max_aspect``                      header only
extreme-resolution   width x height > ``max_megapixels`` (never decoded: bombs)    header only
underexposed         share of luma <= ``dark_level`` >= ``exposure_share``           decoded, analysis size
overexposed          share of luma >= ``bright_level`` >= ``exposure_share``         decoded, analysis size
blank                luma std < ``blank_std`` and (colour check) every RGB        decoded, analysis size
                     channel's std < ``blank_std``
blur                 Laplacian variance < ``blur_laplacian_var`` and (edge          decoded, analysis size
                     sharpness < ``blur_edge_sharpness`` or gradient anisotropy
                     < ``blur_anisotropy`` (directional / motion blur))
==================== ============================================================ ==========================

Pixel statistics are computed on the luma plane reduced by the largest power-of-two factor (1, 2, 4, 8: libjpeg's
DCT scales) that keeps the longest side >= ``analysis_side``: exposure and variance from its 256-bin histogram,
sharpness from a 4-neighbour Laplacian (gradient statistics only for blur candidates whose reason an earlier check
has not already decided). With ``reduced=True`` (default) JPEGs decode only their luma plane at that DCT scale
(libjpeg-turbo through simplejpeg, size from its header parser, its warnings checked, so data cut and closed again
with an end marker fails; PIL ``draft`` when the file has no end marker, so truncated files still fail), so the
statistics see almost the same pixels as the reference (``reduced=False``): a full-resolution PIL decode reduced by
the same factor with a box filter. 8-bit grey and RGB PNGs whose every chunk CRC checks out are decoded by libspng
(pyspng), bit-identical to PIL's decode and about 1.5x faster, then converted and reduced by PIL as before.
``gpic-lab bench filters`` measures how often both give the same decision. Colour is decoded only for near-flat
luma (to tell equal-luma colour patterns from blank frames).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpic_lab.core.images import open_header
from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.errors import UsageError
from gpic_lab.filters.pixels import (
    analysis_luma,
    chroma_std,
    hist_moments,
    jpeg_size,
    png_luma,
    png_pixels,
    reduced_jpeg_luma,
)

REASONS = ("undecodable", "too-small", "extreme-aspect", "extreme-resolution", "underexposed", "overexposed",
           "blank", "blur")
SCORES = ("longest_side", "aspect", "megapixels", "decode_scale", "pixel_std", "luma_mean", "dark_share",
          "bright_share", "laplacian_var", "edge_sharpness", "grad_anisotropy")


@dataclass(frozen=True)
class QualityThresholds:
    """Named thresholds of the heuristic filter (GPIC publishes only the 256 px rule; the rest are ours).

    Attributes:
        min_longest_side: drop when max(width, height) is below this (GPIC: 256).
        max_aspect: drop when max/min side exceeds this (panoramas up to 5:1 are kept).
        max_megapixels: drop when width*height exceeds this many million pixels (checked before decoding).
        analysis_side: longest side of the grayscale/RGB downscale the pixel statistics are computed on.
        dark_level: luma (0-255) at or below which a pixel counts as dark.
        bright_level: luma at or above which a pixel counts as blown out.
        exposure_share: share of dark (bright) pixels at which an image is under- (over-) exposed.
        blank_std: near-blank when the luma standard deviation and every RGB channel's are below this.
        blur_laplacian_var: blur candidate when the variance of the 4-neighbour Laplacian is below this.
        blur_edge_sharpness: no sharp edge anywhere when p99.9 gradient magnitude / (p99 - p1 luma) is below this.
        blur_anisotropy: directional (motion) blur when min/max of horizontal vs vertical gradient energy is below.
    """

    min_longest_side: int = 256
    max_aspect: float = 5.0
    max_megapixels: float = 64.0
    analysis_side: int = 128
    dark_level: int = 24
    bright_level: int = 235
    exposure_share: float = 0.9
    blank_std: float = 4.0
    blur_laplacian_var: float = 40.0
    blur_edge_sharpness: float = 0.2
    blur_anisotropy: float = 0.3

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> QualityThresholds:
        """Thresholds overridden by ``params`` (unknown keys other than ``reduced`` are a UsageError)."""
        params = dict(params or {})
        params.pop("reduced", None)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise UsageError(f"quality: unknown parameter(s) {unknown}; known: {sorted(fields)} and 'reduced'")
        values: dict[str, Any] = {}
        for name, raw in params.items():
            kind = int if fields[name].type in ("int", int) else float
            try:
                values[name] = kind(raw)
            except (TypeError, ValueError):
                raise UsageError(f"quality: parameter {name}={raw!r} is not a {kind.__name__}") from None
        return cls(**values)


DEFAULT = QualityThresholds()
# ranges: OUR ASSUMPTION (what keeps each rule meaningful); max_megapixels stops at Pillow's own refusal to decode
# (2 x its 89.5 MP decompression-bomb limit), so "never decoded: bombs" holds for every allowed value
PARAMS = (
    ParamSpec("min_longest_side", "int", DEFAULT.min_longest_side, "too-small below this longest side, px (GPIC: 256)",
              low=1),
    ParamSpec("max_aspect", "float", DEFAULT.max_aspect, "extreme-aspect above this longest/shortest side ratio",
              low=1),
    ParamSpec("max_megapixels", "float", DEFAULT.max_megapixels, "extreme-resolution above this many million "
              "pixels (checked before decoding)", low=0, low_open=True, high=178),
    ParamSpec("analysis_side", "int", DEFAULT.analysis_side, "longest side of the downscale the pixel statistics "
              "use, px", low=16, high=4096),
    ParamSpec("dark_level", "int", DEFAULT.dark_level, "luma at or below which a pixel is dark", low=0, high=255),
    ParamSpec("bright_level", "int", DEFAULT.bright_level, "luma at or above which a pixel is blown out", low=0,
              high=255),
    ParamSpec("exposure_share", "float", DEFAULT.exposure_share, "share of dark (bright) pixels that makes an "
              "image under- (over-) exposed", low=0, low_open=True, high=1),
    ParamSpec("blank_std", "float", DEFAULT.blank_std, "blank below this luma (and every RGB channel's) std", low=0),
    ParamSpec("blur_laplacian_var", "float", DEFAULT.blur_laplacian_var, "blur candidate below this Laplacian "
              "variance", low=0),
    ParamSpec("blur_edge_sharpness", "float", DEFAULT.blur_edge_sharpness, "blur when no edge is sharper than "
              "this (p99.9 gradient / luma range)", low=0),
    ParamSpec("blur_anisotropy", "float", DEFAULT.blur_anisotropy, "directional blur below this min/max gradient "
              "energy ratio", low=0, high=1),
    ParamSpec("reduced", "bool", True, "decode JPEGs at a reduced DCT scale (false: full decode, the reference)"),
)


def _empty_scores() -> dict[str, float]:
    return dict.fromkeys(SCORES, math.nan)


def _header(data: bytes) -> Any:
    """The header only, without Pillow's decompression-bomb check: `geometry_reason` refuses what is too large
    before anything is decoded, so a bomb is ``extreme-resolution``, not ``undecodable``."""
    return open_header(data)


def geometry_reason(width: int, height: int, t: QualityThresholds, scores: dict[str, float]) -> str | None:
    """The header-only checks (size, aspect, resolution); fills the geometry scores."""
    longest, shortest = max(width, height), max(min(width, height), 1)
    scores.update(longest_side=float(longest), aspect=longest / shortest, megapixels=width * height / 1e6)
    if longest < t.min_longest_side:
        return "too-small"
    if longest / shortest > t.max_aspect:
        return "extreme-aspect"
    if width * height / 1e6 > t.max_megapixels:
        return "extreme-resolution"
    return None


def luma_histogram(luma: np.ndarray) -> np.ndarray:
    """256-bin histogram of a uint8 plane as float64 counts (OpenCV's, exact below 2**24 pixels; else numpy's)."""
    if luma.size < 1 << 24 and luma.dtype == np.uint8:
        import cv2

        return cv2.calcHist([np.ascontiguousarray(luma)], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    return np.bincount(luma.ravel(), minlength=256).astype(np.float64)


def luma_stats(luma: np.ndarray, t: QualityThresholds, hist: np.ndarray | None = None) -> dict[str, float]:
    """Exposure and variance statistics from the luma histogram (cheap: 256 bins)."""
    hist = luma_histogram(luma) if hist is None else hist
    n = max(hist.sum(), 1.0)
    mean, std = hist_moments(hist)
    return {"luma_mean": mean, "pixel_std": std, "dark_share": float(hist[: t.dark_level + 1].sum() / n),
            "bright_share": float(hist[t.bright_level:].sum() / n)}


def sharpness_stats(luma: np.ndarray, t: QualityThresholds, hist: np.ndarray | None = None,
                    detail: bool = True) -> dict[str, float]:
    """Laplacian variance; edge sharpness and gradient anisotropy only when the Laplacian says "blur candidate"
    and ``detail`` (the caller passes False when an earlier check already decided: NaN then, since they cannot change
    the decision). ``hist``: the luma histogram when the caller has it."""
    import cv2  # opencv-python-headless: 3x3 filters without numpy temporaries

    a = luma
    out = {"laplacian_var": math.nan, "edge_sharpness": math.nan, "grad_anisotropy": math.nan}
    if min(a.shape) < 3:
        return out
    # int16 holds every 4-neighbour Laplacian of uint8 (|v| <= 1020) and OpenCV computes it several times faster
    # than into float32; the float32 copy of the inner part gives meanStdDev its fast contiguous path
    _mean, std = cv2.meanStdDev(cv2.Laplacian(a, cv2.CV_16S, ksize=1)[1:-1, 1:-1].astype(np.float32))
    out["laplacian_var"] = float(std[0, 0]) ** 2
    if out["laplacian_var"] >= t.blur_laplacian_var or not detail:
        return out
    f = a.astype(np.float32)
    gx, gy = np.diff(f, axis=1)[:-1, :], np.diff(f, axis=0)[:, :-1]
    ex, ey = cv2.norm(gx, cv2.NORM_L2SQR) / gx.size, cv2.norm(gy, cv2.NORM_L2SQR) / gy.size
    mag = cv2.magnitude(np.ascontiguousarray(gx), np.ascontiguousarray(gy))
    cdf = np.cumsum(luma_histogram(a) if hist is None else hist)
    lo, hi = np.searchsorted(cdf, [0.01 * cdf[-1], 0.99 * cdf[-1]])
    out["edge_sharpness"] = float(_high_quantile(mag, 0.999) / max(float(hi - lo), 1.0))
    out["grad_anisotropy"] = min(ex, ey) / max(ex, ey) if max(ex, ey) > 0 else 1.0
    return out


def _high_quantile(values: np.ndarray, q: float) -> float:
    """``np.partition(v, k)[k]`` with ``k = min(n - 1, int(n * q))`` over the flattened 2-D ``values``, exactly, for q
    close to 1: the m = n - k largest values are all at least the m-th largest row maximum (those m row maxima are
    among them), so only the values from that bound up are partitioned."""
    flat = values.ravel()
    k = min(flat.size - 1, int(flat.size * q))
    m = flat.size - k
    if values.ndim != 2 or values.shape[0] < m:
        return float(np.partition(flat, k)[k])
    row_max = values.max(axis=1)
    bound = np.partition(row_max, row_max.size - m)[row_max.size - m]
    top = flat[flat >= bound]
    return float(np.partition(top, top.size - m)[top.size - m])


def pixel_reason(s: dict[str, float], t: QualityThresholds) -> str | None:
    """The first failing pixel check (exposure, blank, blur) for statistics from ``luma_stats``/``sharpness_stats``."""
    if s["dark_share"] >= t.exposure_share:
        return "underexposed"
    if s["bright_share"] >= t.exposure_share:
        return "overexposed"
    if s["pixel_std"] < t.blank_std:
        return "blank"
    lap = s["laplacian_var"]
    if not math.isnan(lap) and lap < t.blur_laplacian_var and (
            s["edge_sharpness"] < t.blur_edge_sharpness or s["grad_anisotropy"] < t.blur_anisotropy):
        return "blur"
    return None


def check_image(data: bytes | None, t: QualityThresholds = DEFAULT, reduced: bool = True) -> tuple[str | None, dict[str, float]]:
    """Run every check on one encoded image; return (reason or None when kept, scores)."""
    scores = _empty_scores()
    if not data:
        return "undecodable", scores
    im, size = None, jpeg_size(data) if reduced else None  # a JPEG's size without building a PIL image
    try:
        if size is None:
            im = _header(data)
            size = im.size
    except Exception:  # noqa: BLE001 - any unreadable header is the 'undecodable' reason
        return "undecodable", scores
    width, height = size
    reason = geometry_reason(width, height, t, scores)
    if reason:
        return reason, scores
    try:
        # reduced: JPEGs through libjpeg-turbo's DCT scaling, common PNGs through libspng (same pixels as PIL's)
        png = png_pixels(data, width, height) if reduced and im is not None and im.format == "PNG" else None
        fast = reduced_jpeg_luma(data, width, height, t.analysis_side) if im is None else \
            png_luma(png, t.analysis_side) if png is not None else None
        if fast is None:
            im = im or _header(data)
        luma, scores["decode_scale"] = fast or analysis_luma(im, t.analysis_side, reduced, data)
        hist = luma_histogram(luma)
        scores.update(luma_stats(luma, t, hist))
        exposed = max(scores["dark_share"], scores["bright_share"]) >= t.exposure_share  # decided already
        if scores["pixel_std"] < t.blank_std and not exposed:  # flat luma: colour contrast (equal-luma patterns)?
            scores["pixel_std"] = max(scores["pixel_std"], chroma_std(data, t.analysis_side, reduced, png))
    except Exception:  # noqa: BLE001 - truncated or corrupt data
        return "undecodable", scores
    decided = exposed or scores["pixel_std"] < t.blank_std  # the blur details could not change the reason
    scores.update(sharpness_stats(luma, t, hist, detail=not decided))
    return pixel_reason(scores, t), scores


@declare(*PARAMS)
def quality_stage(samples: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
    """Stage ``quality``: one Decision per sample with a reason from ``REASONS`` and the ``SCORES`` as scores.

    params: any ``QualityThresholds`` field, plus ``reduced`` (default True: reduced-size JPEG decoding).
    """
    from gpic_lab.engine.records import Decision

    t = QualityThresholds.from_params(params)
    reduced = bool((params or {}).get("reduced", True))
    out = []
    for s in samples:
        reason, scores = check_image(s.image, t, reduced)
        out.append(Decision(s.key, reason is None, reason, scores=scores))
    return out
