"""Heuristic quality filter: every rule on synthetic images, the planted sample corpus, reduced vs full decoding."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gpic_lab.errors import UsageError
from gpic_lab.filters import quality


def encode(arr: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def scene(w: int = 640, h: int = 480, seed: int = 0) -> np.ndarray:
    """A sharp scene: random coloured rectangles with hard edges plus mild noise."""
    rng = np.random.default_rng(seed)
    arr = np.full((h, w, 3), 120.0)
    for _ in range(25):
        x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
        arr[y0:y0 + rng.integers(10, h // 2), x0:x0 + rng.integers(10, w // 2)] = rng.integers(0, 256, 3)
    return np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255)


def reason(data: bytes, **overrides: float) -> str | None:
    return quality.check_image(data, quality.QualityThresholds(**overrides))[0]


def test_sharp_images_are_kept_in_both_formats() -> None:
    for seed in range(3):
        assert reason(encode(scene(seed=seed))) is None
        assert reason(encode(scene(seed=seed), "PNG")) is None


@pytest.mark.parametrize(("size", "expected"), [((255, 200), "too-small"), ((256, 200), None),
                                                 ((1300, 250), "extreme-aspect"), ((1250, 250), None)])
def test_geometry_rules_at_their_thresholds(size: tuple[int, int], expected: str | None) -> None:
    w, h = size
    assert reason(encode(scene(w, h))) == expected


def test_extreme_resolution_is_decided_from_the_header_without_decoding() -> None:
    data = encode(scene(800, 600))
    got, scores = quality.check_image(data, quality.QualityThresholds(max_megapixels=0.4))
    assert got == "extreme-resolution"
    assert scores["megapixels"] == pytest.approx(0.48)
    assert np.isnan(scores["laplacian_var"])  # never decoded


@pytest.mark.parametrize("data", [b"", b"not an image at all", None])
def test_garbage_is_undecodable(data: bytes | None) -> None:
    assert reason(data) == "undecodable"  # type: ignore[arg-type]


def test_truncated_jpeg_is_undecodable() -> None:
    data = encode(scene())
    assert reason(data[: len(data) // 3]) == "undecodable"


def test_16_bit_grey_png_is_read_at_its_full_range() -> None:
    """PIL's convert clips 16-bit grey at 255 (everything white): the check scales it to 8 bits first."""
    grey = scene()[..., 0]
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint16) * 257).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    for reduced in (True, False):
        assert quality.check_image(buf.getvalue(), reduced=reduced)[0] == reason(encode(grey, "PNG"))
    from gpic_lab.filters import safety, vlm_judge

    eight = encode(grey, "PNG")
    assert np.array_equal(np.asarray(vlm_judge.open_rgb(buf.getvalue())), np.asarray(vlm_judge.open_rgb(eight)))
    assert np.allclose(safety.preprocess(buf.getvalue()), safety.preprocess(eight), atol=1 / 255)


def test_exposure_and_blank() -> None:
    base = scene()
    assert reason(encode(base * 0.05)) == "underexposed"
    assert reason(encode(255 - (255 - base) * 0.04)) == "overexposed"
    flat = np.full((400, 500, 3), 128.0) + np.random.default_rng(1).normal(0, 1.0, (400, 500, 3))
    assert reason(encode(flat)) == "blank"
    # a red/blue checkerboard of nearly equal luma is not blank: variance is measured per RGB channel
    checker = np.zeros((400, 500, 3))
    mask = ((np.indices((400, 500)).sum(0) // 50) % 2).astype(bool)
    checker[mask] = (120, 40, 40)
    checker[~mask] = (40, 40, 255)
    assert reason(encode(checker)) is None


def test_gaussian_and_motion_blur_are_caught_but_texture_is_kept() -> None:
    sharp = Image.fromarray(scene(seed=4).astype(np.uint8))
    blurred = np.asarray(sharp.filter(ImageFilter.GaussianBlur(10)))
    assert reason(encode(blurred)) == "blur"
    soft = np.asarray(sharp.filter(ImageFilter.GaussianBlur(3))).astype(float)
    assert reason(encode(soft)) is None  # mild defocus alone is not severe blur
    kernel = np.ones(41) / 41  # plus horizontal motion over 41 px: directional blur
    motion = np.stack([np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, soft[..., c])
                       for c in range(3)], -1)
    got, scores = quality.check_image(encode(motion[:, 41:-41]))
    assert got == "blur" and scores["grad_anisotropy"] < 0.3 and scores["edge_sharpness"] > 0.2
    assert reason(encode(np.asarray(sharp.filter(ImageFilter.GaussianBlur(1))))) is None


def test_reduced_decoding_uses_a_dct_scale_and_agrees_with_full_decoding() -> None:
    data = encode(scene(1600, 1200, seed=7))
    r_reduced, s_reduced = quality.check_image(data, reduced=True)
    r_full, s_full = quality.check_image(data, reduced=False)
    assert s_reduced["decode_scale"] == 0.125 and s_full["decode_scale"] == 1.0
    assert r_reduced == r_full is None
    assert s_reduced["luma_mean"] == pytest.approx(s_full["luma_mean"], abs=2.0)


def test_params_override_thresholds_and_reject_unknown_keys() -> None:
    t = quality.QualityThresholds.from_params({"min_longest_side": "300", "reduced": False, "blank_std": 2})
    assert t.min_longest_side == 300 and t.blank_std == 2.0
    with pytest.raises(UsageError, match="unknown parameter"):
        quality.QualityThresholds.from_params({"min_side": 3})
    with pytest.raises(UsageError, match="not a int"):
        quality.QualityThresholds.from_params({"analysis_side": "big"})


def _ground_truth(sample_dir: Path) -> dict[str, dict[str, str]]:
    with open(sample_dir / "ground_truth.csv") as f:
        return {r["key"]: r for r in csv.DictReader(f)}


def test_planted_low_quality_images_are_caught_with_their_reason(sample_dir: Path) -> None:
    from gpic_lab.shards.reader import iter_samples

    truth = _ground_truth(sample_dir)
    samples = list(iter_samples([sample_dir / "raw" / "gpic_raw_quality.tar"]))
    decisions = {d.key: d for d in quality.quality_stage(samples, {})}
    planted = [k for k, r in truth.items() if r["kind"] == "quality"]
    assert len(planted) == 7
    for key in planted:
        assert decisions[key].reason == truth[key]["label"], truth[key]
    controls = [s.key for s in samples if truth.get(s.key, {}).get("kind") == "control"]
    assert controls and all(decisions[k].keep for k in controls)
    assert set(decisions[next(iter(decisions))].scores) == set(quality.SCORES)


def test_clean_splits_are_all_kept_and_reduced_equals_full(sample_dir: Path) -> None:
    from gpic_lab.shards.reader import iter_samples, list_shards

    samples = list(iter_samples(list_shards([sample_dir / d for d in ("train", "val", "test")])))
    reduced = quality.quality_stage(samples, {})
    full = quality.quality_stage(samples, {"reduced": False})
    assert all(d.keep for d in reduced), [(d.key, d.reason) for d in reduced if not d.keep]
    assert [d.reason for d in reduced] == [d.reason for d in full]


def test_quality_stage_through_the_engine(sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.engine.stages import run_stage

    summary = run_stage("quality", [str(sample_dir / "raw" / "gpic_raw_quality.tar")], tmp_path / "q",
                        workers=1, progress=False)
    frame = pd.read_parquet(tmp_path / "q" / "decisions.parquet")
    assert summary["samples"] == len(frame) == 9
    assert summary["reasons"]["blur"] == 2 and summary["kept"] == 2
    assert {f"score_{s}" for s in quality.SCORES} <= set(frame.columns)
    marker = json.loads((tmp_path / "q" / "done" / "gpic_raw_quality.done").read_text())
    assert marker["samples"] == 9


def test_opencv_fast_path_matches_pil_draft_decoding() -> None:
    data = encode(scene(900, 700, seed=9))
    fast, scale_fast = quality.analysis_luma(quality._header(data), 128, True, data)
    slow, scale_slow = quality.analysis_luma(quality._header(data), 128, True, None)
    full, scale_full = quality.analysis_luma(quality._header(data), 128, False, data)
    assert fast.shape == slow.shape == full.shape == (175, 225)
    assert scale_fast == scale_slow == 0.25 and scale_full == 1.0
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 1.0
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 4.0


@pytest.mark.slow
def test_quality_and_safety_decide_the_same_on_the_dask_engine(sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.engine.stages import run_stage

    shards = [str(sample_dir / "raw" / "gpic_raw_quality.tar"), str(sample_dir / "raw" / "gpic_raw_license.tar")]
    for name in ("quality", "safety-cpu"):
        local = run_stage(name, shards, tmp_path / name / "local", workers=1, progress=False)
        dask = run_stage(name, shards, tmp_path / name / "dask", engine="dask", workers=2, progress=False)
        assert local["reasons"] == dask["reasons"] and dask["engine"] == "dask"
        frames = [pd.read_parquet(tmp_path / name / e / "decisions.parquet").sort_values("key").reset_index(drop=True)
                  for e in ("local", "dask")]
        pd.testing.assert_frame_equal(frames[0], frames[1])
