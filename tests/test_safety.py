"""CPU safety stand-in: the real NudeNet ONNX model from the wheel, on real CC0 photos from the skimage wheel."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpic_lab.errors import UsageError
from gpic_lab.filters import safety

PHOTOS = ("astronaut", "camera", "coffee", "chelsea")


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    from skimage import data

    out = {}
    for name in PHOTOS:
        buf = io.BytesIO()
        Image.fromarray(getattr(data, name)()).save(buf, "JPEG", quality=92)
        out[name] = buf.getvalue()
    return out


def shard_samples(tmp_path: Path, blobs: list[bytes]) -> list:
    from gpic_lab.shards.reader import iter_entries
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    entries = []
    for i, data in enumerate(blobs):
        key = hashlib.sha256(data + bytes([i])).hexdigest()
        meta = new_record(key, 512, 512, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/",
                          "skimage via Wikimedia Commons", "2026-01-01T00:00:00Z", "short", "A photo.", ["full"])
        entries.append((key, meta, data, "jpg"))
    write_shard(tmp_path / "gpic_raw_safety.tar", entries)
    return list(iter_entries(tmp_path / "gpic_raw_safety.tar", images=True))


def test_scores_match_the_nudenet_reference_detector(photos: dict[str, bytes]) -> None:
    import nudenet

    detector = nudenet.NudeDetector()
    ours = safety.class_scores(np.stack([safety.preprocess(photos[n]) for n in ("astronaut", "camera")]),
                               safety.session())
    for name, row in zip(("astronaut", "camera"), ours, strict=True):
        ref = max(detector.detect(photos[name]), key=lambda d: d["score"])
        assert ref["class"] in safety.FACE_CLASSES
        assert row[safety.LABELS.index(ref["class"])] == pytest.approx(ref["score"], abs=0.08)


def test_real_photos_are_kept_and_reported_as_a_stand_in(tmp_path: Path, photos: dict[str, bytes]) -> None:
    samples = shard_samples(tmp_path, [photos[n] for n in PHOTOS])
    decisions = safety.safety_stage(samples, {})
    assert [d.key for d in decisions] == [s.key for s in samples]
    assert all(d.keep for d in decisions)
    assert all(d.extra["safety_model"] == safety.STAND_IN and "stand-in" in d.extra["safety_model"]
               for d in decisions)
    assert decisions[0].scores["face"] > 0.5  # the astronaut portrait has a face
    assert all(0.0 <= d.scores["nudity"] < 0.4 for d in decisions)


def test_a_lower_threshold_drops_with_reason_and_class(tmp_path: Path, photos: dict[str, bytes]) -> None:
    samples = shard_samples(tmp_path, [photos["coffee"], photos["chelsea"]])
    strict = safety.safety_stage(samples, {"threshold": 0.2})
    assert (strict[0].keep, strict[0].reason) == (False, "unsafe-nudity")
    assert strict[0].extra["safety_top"] in safety.UNSAFE_CLASSES
    assert strict[1].keep and strict[1].extra["safety_top"] is None


def test_batch_size_does_not_change_scores(tmp_path: Path, photos: dict[str, bytes]) -> None:
    samples = shard_samples(tmp_path, [photos[n] for n in PHOTOS] * 2)
    one = safety.safety_stage(samples, {"batch_size": 1})
    many = safety.safety_stage(samples, {"batch_size": 5})
    assert [d.scores["nudity"] for d in one] == pytest.approx([d.scores["nudity"] for d in many], abs=1e-4)


def test_undecodable_images_get_a_reason_not_a_gap(tmp_path: Path, photos: dict[str, bytes]) -> None:
    samples = shard_samples(tmp_path, [photos["astronaut"], b"\xff\xd8\xff garbage", photos["camera"]])
    decisions = safety.safety_stage(samples, {"batch_size": 2})
    assert [(d.keep, d.reason) for d in decisions] == [(True, None), (False, "undecodable"), (True, None)]


@pytest.mark.parametrize("params", [{"threshold": 2}, {"batch_size": 0}, {"thresh": 0.5}, {"threshold": "x"}])
def test_bad_params_are_usage_errors(params: dict) -> None:
    with pytest.raises(UsageError, match="safety-cpu"):
        safety.safety_stage([], params)


def test_safety_stage_through_the_engine(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.engine.stages import run_stage

    summary = run_stage("safety-cpu", [str(sample_dir / "raw" / "gpic_raw_quality.tar")], tmp_path / "s",
                        workers=1, progress=False)
    assert summary["samples"] == 9 and summary["kept"] + summary["dropped"] == 9
    assert summary["reasons"].get("unsafe-nudity", 0) == 0
