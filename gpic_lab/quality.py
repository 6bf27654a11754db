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
blank                largest per-channel RGB std < ``blank_std``                   decoded, analysis size
blur                 Laplacian variance < ``blur_laplacian_var`` and (edge          decoded, analysis size
                     sharpness < ``blur_edge_sharpness`` or gradient anisotropy
                     < ``blur_anisotropy`` (directional / motion blur))
==================== ============================================================ ==========================

Pixel statistics are computed on a downscale whose longest side is ``analysis_side`` (box filter). With
``reduced=True`` (default) JPEGs are decoded at a reduced DCT scale (PIL ``draft``: 1/2, 1/4 or 1/8) that is still
at least ``analysis_side`` on the longest side, so the statistics see almost the same pixels as a full-resolution
decode followed by the same downscale; ``gpic-lab bench filters`` measures how often both give the same decision.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError

REASONS = ("undecodable", "too-small", "extreme-aspect", "extreme-resolution", "underexposed", "overexposed",
           "blank", "blur")
SCORES = ("longest_side", "aspect", "megapixels", "decode_scale", "rgb_std", "luma_mean", "dark_share",
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
        blank_std: near-blank when the largest per-channel standard deviation of RGB is below this.
        blur_laplacian_var: blur candidate when the variance of the 4-neighbour Laplacian is below this.
        blur_edge_sharpness: no sharp edge anywhere when p99.9 gradient magnitude / (p99 - p1 luma) is below this.
        blur_anisotropy: directional (motion) blur when min/max of horizontal vs vertical gradient energy is below.
    """

    min_longest_side: int = 256
    max_aspect: float = 5.0
    max_megapixels: float = 64.0
    analysis_side: int = 256
    dark_level: int = 24
    bright_level: int = 235
    exposure_share: float = 0.9
    blank_std: float = 4.0
    blur_laplacian_var: float = 25.0
    blur_edge_sharpness: float = 0.12
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


def _empty_scores() -> dict[str, float]:
    return dict.fromkeys(SCORES, math.nan)


def _header(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data))


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


def decode_for_analysis(im: Any, side: int, reduced: bool = True) -> tuple[np.ndarray, float]:
    """RGB uint8 array with longest side ``side`` (box downscale; never upscaled) and the JPEG DCT scale used.

    ``reduced`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the result stays >= ``side``.
    """
    from PIL import Image

    width, height = im.size
    scale = 1.0
    longest = max(width, height)
    if reduced and im.format == "JPEG" and longest > side:
        want = (max(1, math.ceil(width * side / longest)), max(1, math.ceil(height * side / longest)))
        im.draft("RGB", want)
        scale = im.size[0] / width
    rgb = im.convert("RGB")
    w, h = rgb.size
    if max(w, h) > side:
        f = side / max(w, h)
        rgb = rgb.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX)
    return np.asarray(rgb), scale


def pixel_stats(rgb: np.ndarray, t: QualityThresholds) -> dict[str, float]:
    """Exposure, variance and sharpness statistics of an RGB uint8 array (see the module table)."""
    f = rgb.astype(np.float32)
    luma = f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114
    stats = {"rgb_std": float(f.reshape(-1, 3).std(axis=0).max()), "luma_mean": float(luma.mean()),
             "dark_share": float((luma <= t.dark_level).mean()), "bright_share": float((luma >= t.bright_level).mean())}
    if min(luma.shape) < 3:
        return {**stats, "laplacian_var": math.nan, "edge_sharpness": math.nan, "grad_anisotropy": math.nan}
    lap = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    gx, gy = np.diff(luma, axis=1)[:-1, :], np.diff(luma, axis=0)[:, :-1]
    mag = np.sqrt(gx * gx + gy * gy)
    lo, hi = np.percentile(luma, [1, 99])
    ex, ey = float((gx * gx).mean()), float((gy * gy).mean())
    stats.update(laplacian_var=float(lap.var()),
                 edge_sharpness=float(np.percentile(mag, 99.9) / max(hi - lo, 1.0)),
                 grad_anisotropy=min(ex, ey) / max(ex, ey) if max(ex, ey) > 0 else 1.0)
    return stats


def pixel_reason(s: dict[str, float], t: QualityThresholds) -> str | None:
    """The first failing pixel check (exposure, blank, blur) for statistics from ``pixel_stats``."""
    if s["dark_share"] >= t.exposure_share:
        return "underexposed"
    if s["bright_share"] >= t.exposure_share:
        return "overexposed"
    if s["rgb_std"] < t.blank_std:
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
    try:
        im = _header(data)
        width, height = im.size
    except Exception:  # noqa: BLE001 - any unreadable header is the 'undecodable' reason
        return "undecodable", scores
    reason = geometry_reason(width, height, t, scores)
    if reason:
        return reason, scores
    try:
        rgb, scale = decode_for_analysis(im, t.analysis_side, reduced)
    except Exception:  # noqa: BLE001 - truncated or corrupt data
        return "undecodable", scores
    scores["decode_scale"] = scale
    scores.update(pixel_stats(rgb, t))
    return pixel_reason(scores, t), scores


def quality_stage(samples: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
    """Stage ``quality``: one Decision per sample with a reason from ``REASONS`` and the ``SCORES`` as scores.

    params: any ``QualityThresholds`` field, plus ``reduced`` (default True: reduced-size JPEG decoding).
    """
    from gpic_lab.records import Decision

    t = QualityThresholds.from_params(params)
    reduced = bool((params or {}).get("reduced", True))
    out = []
    for s in samples:
        reason, scores = check_image(s.image, t, reduced)
        out.append(Decision(s.key, reason is None, reason, scores=scores))
    return out
