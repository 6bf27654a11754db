"""Re-decide the ``quality`` and ``safety-cpu`` stages from their stored ``score_*`` columns (no image is read).

Used by ``gpic_lab.engine.rethreshold`` (``gpic-lab rethreshold``) and the threshold sliders of notebook 03. Each
rule takes a decisions frame, the new thresholds and the thresholds the stage ran with, and returns the new
``keep`` / ``reason`` plus ``undecided``: rows the stored scores cannot decide under the new thresholds (they keep
the stage's own decision and are counted, so a rerun of the stage is the way to settle them):

- quality: an image dropped for its geometry has no pixel statistics; the blur statistics (edge sharpness,
  gradient anisotropy) exist only for images below the old Laplacian threshold; the colour check behind ``blank``
  ran only for near-flat luma below the old ``blank_std``. Thresholds the scores themselves depend on
  (``dark_level``, ``bright_level``, ``analysis_side``) cannot be changed here.
- safety-cpu: exact for every threshold (``score_nudity`` is the maximum unsafe-class score).

Rows the stage dropped before scoring (``undecodable``, ``unreadable:<code>``) keep their decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gpic_lab.errors import UsageError

QUALITY_PARAMS = ("min_longest_side", "max_aspect", "max_megapixels", "exposure_share", "blank_std",
                  "blur_laplacian_var", "blur_edge_sharpness", "blur_anisotropy")
SAFETY_PARAMS = ("threshold",)
SLIDERS: dict[str, dict[str, tuple[float, float, float]]] = {  # (min, max, step) of notebook 03's sliders
    "quality": {"min_longest_side": (64, 1024, 32), "max_aspect": (1.0, 10.0, 0.25), "exposure_share": (0.5, 1.0, 0.01),
                "blank_std": (0.5, 20.0, 0.5), "blur_laplacian_var": (5.0, 200.0, 5.0),
                "blur_edge_sharpness": (0.05, 1.0, 0.05), "blur_anisotropy": (0.05, 1.0, 0.05)},
    "safety-cpu": {"threshold": (0.05, 0.95, 0.05)},
}


def _col(frame: Any, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float, na_value=np.nan) if name in frame.columns else np.full(len(frame), np.nan)


def _unscored(frame: Any, scored_reasons: tuple[str, ...]) -> np.ndarray:
    """Rows whose decision no threshold can change: dropped for a reason that is not a threshold's."""
    reason = frame["reason"].astype("object")
    return reason.notna().to_numpy() & ~reason.isin(scored_reasons).to_numpy()


def _check_names(stage: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UsageError(f"rethreshold {stage}: cannot change {unknown} from stored scores; "
                         f"thresholds that can: {', '.join(allowed)}")


def quality_rule(frame: Any, params: Mapping[str, Any], source_params: Mapping[str, Any],
                 stage_dir: Any = None) -> dict[str, Any]:
    """New decisions of a ``quality`` table: {keep, reason, undecided (arrays), params (the thresholds used)}."""
    from dataclasses import asdict

    from gpic_lab.filters.quality import REASONS, QualityThresholds

    _check_names("quality", params, QUALITY_PARAMS)
    old = QualityThresholds.from_params({k: v for k, v in source_params.items() if k != "reduced"})
    new = QualityThresholds.from_params({**asdict(old), **dict(params)})
    s = {c: _col(frame, f"score_{c}") for c in ("longest_side", "aspect", "megapixels", "dark_share",
                                                "bright_share", "pixel_std", "laplacian_var", "edge_sharpness",
                                                "grad_anisotropy")}
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    undecided = np.zeros(n, bool)
    fixed = _unscored(frame, tuple(r for r in REASONS if r != "undecodable"))
    open_ = ~fixed

    def decide(mask: np.ndarray, name: str) -> None:
        nonlocal open_
        hit = open_ & mask
        reason[hit] = name
        open_ = open_ & ~mask

    decide(s["longest_side"] < new.min_longest_side, "too-small")
    decide(s["aspect"] > new.max_aspect, "extreme-aspect")
    decide(s["megapixels"] > new.max_megapixels, "extreme-resolution")
    no_pixels = open_ & np.isnan(s["dark_share"])  # dropped for geometry before: never measured
    undecided |= no_pixels
    open_ &= ~no_pixels
    decide(s["dark_share"] >= new.exposure_share, "underexposed")
    decide(s["bright_share"] >= new.exposure_share, "overexposed")
    old_exposed = np.maximum(s["dark_share"], s["bright_share"]) >= old.exposure_share
    maybe_blank = open_ & (s["pixel_std"] < new.blank_std)
    colour_known = (s["pixel_std"] < old.blank_std) & ~old_exposed  # the colour check ran: pixel_std is final
    undecided |= maybe_blank & ~colour_known
    open_ &= ~(maybe_blank & ~colour_known)
    decide(s["pixel_std"] < new.blank_std, "blank")
    lap = s["laplacian_var"]
    candidate = open_ & ~np.isnan(lap) & (lap < new.blur_laplacian_var)
    unmeasured = candidate & np.isnan(s["edge_sharpness"])  # above the old Laplacian threshold: not measured
    undecided |= unmeasured
    open_ &= ~unmeasured
    decide(candidate & ((s["edge_sharpness"] < new.blur_edge_sharpness)
                        | (s["grad_anisotropy"] < new.blur_anisotropy)), "blur")
    return _result(frame, reason, undecided, fixed, asdict(new))


def safety_rule(frame: Any, params: Mapping[str, Any], source_params: Mapping[str, Any],
                stage_dir: Any = None) -> dict[str, Any]:
    """New decisions of a ``safety-cpu`` table (``unsafe-nudity`` when ``score_nudity >= threshold``)."""
    _check_names("safety-cpu", params, SAFETY_PARAMS)
    threshold = float(params.get("threshold", source_params.get("threshold", 0.4)))
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"rethreshold safety-cpu: threshold must be in [0, 1], got {threshold}")
    nudity = _col(frame, "score_nudity")
    fixed = _unscored(frame, ("unsafe-nudity",))
    reason = np.where(~fixed & (nudity >= threshold), "unsafe-nudity", None).astype(object)
    return _result(frame, reason, np.zeros(len(frame), bool), fixed, {**dict(source_params), "threshold": threshold})


def _result(frame: Any, reason: np.ndarray, undecided: np.ndarray, fixed: np.ndarray,
            params: dict[str, Any]) -> dict[str, Any]:
    """The rule's answer; undecided rows and rows dropped before scoring (``fixed``) keep the stage's decision."""
    old_reason = frame["reason"].astype("object").to_numpy()
    out = np.where(undecided | fixed, old_reason, reason)
    out = np.array([r if isinstance(r, str) else None for r in out], dtype=object)
    return {"keep": np.array([r is None for r in out], dtype=bool), "reason": out, "undecided": undecided & ~fixed,
            "params": params}
