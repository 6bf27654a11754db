"""VLM judge: answer parsing, reason priority, prompts, and the real Qwen3-VL load + generate path on a tiny random
model (CPU)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpic_lab.errors import UsageError
from gpic_lab.filters import vlm_judge

CLEAN = "BLANK: no\nBLURRY: no\nDARK: no\nBRIGHT: no\nLOW_CONTENT: no"


@pytest.mark.parametrize(("text", "parsed", "flags"), [
    (CLEAN, True, ()),
    (CLEAN.replace("BLURRY: no", "BLURRY: yes"), True, ("blur",)),
    ("blank: No\nblurry: no\ndark: YES\nbright: no\nlow_content: no", True, ("underexposed",)),
    ("1. **BLANK**: no\n2. **BLURRY**: no\n3. **DARK**: no\n4. **BRIGHT**: yes\n5. **LOW CONTENT**: no", True,
     ("overexposed",)),
    ("BLANK: yes", True, ("blank",)),  # a yes is evidence even when the other lines are missing
    ("BLANK: no\nBLURRY: no", False, ()),  # incomplete and clean: cannot be called clean
    ("The picture shows a cat on a sofa.", False, ()),
    ("", False, ()),
    ("BLANK: maybe\nBLURRY: no\nDARK: no\nBRIGHT: no\nLOW_CONTENT: no", False, ()),
])
def test_parse_quality(text: str, parsed: bool, flags: tuple[str, ...]) -> None:
    verdict = vlm_judge.parse_quality(text)
    assert (verdict.parsed, verdict.flags) == (parsed, flags)


@pytest.mark.parametrize(("text", "parsed", "flags"), [
    ("UNSAFE: no", True, ()), ("unsafe: Yes", True, ("unsafe",)), ("Yes.", True, ("unsafe",)),
    ("no", True, ()), ("I cannot tell", False, ()), ("UNSAFE -> perhaps", False, ()),
])
def test_parse_safety(text: str, parsed: bool, flags: tuple[str, ...]) -> None:
    verdict = vlm_judge.parse_safety(text)
    assert (verdict.parsed, verdict.flags) == (parsed, flags)


def test_decide_priority_unsafe_then_quality_then_unparseable() -> None:
    blurry = CLEAN.replace("BLURRY: no", "BLURRY: yes")
    assert vlm_judge.decide({"quality": blurry, "safety": "UNSAFE: yes"})[0] == "unsafe"
    assert vlm_judge.decide({"quality": blurry, "safety": "???"})[0] == "blur"
    assert vlm_judge.decide({"quality": CLEAN, "safety": "???"})[0] == vlm_judge.UNPARSEABLE
    assert vlm_judge.decide({"quality": CLEAN, "safety": "???"}, unparseable="keep")[0] is None
    reason, scores = vlm_judge.decide({"quality": CLEAN, "safety": "UNSAFE: no"})
    assert reason is None and scores == {"judge_quality_flags": 0.0, "judge_safety_flags": 0.0}


def test_prompts_are_versioned_and_ask_for_the_parsed_format() -> None:
    quality, qv = vlm_judge.load_prompt("quality")
    safety, sv = vlm_judge.load_prompt("safety")
    combined, cv = vlm_judge.load_prompt("combined")
    assert (qv, sv, cv) == ("quality/v1", "safety/v1", "combined/v1")
    assert all(name in combined for name in [*vlm_judge.QUALITY_FIELDS, "UNSAFE"])
    assert all(name in quality for name in vlm_judge.QUALITY_FIELDS)
    assert "UNSAFE: yes" in safety and "#" not in safety.splitlines()[0]
    with pytest.raises(UsageError, match="no prompt"):
        vlm_judge.load_prompt("aesthetics")


@pytest.mark.parametrize("params", [{"checks": "quality,nsfw"}, {"checks": []}, {"batch_size": 0},
                                    {"unparseable": "maybe"}, {"modle": "x"}, {"one_pass": "yes"}])
def test_bad_params_are_usage_errors(params: dict) -> None:
    with pytest.raises(UsageError, match="vlm-judge"):
        vlm_judge.params_of(params)


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found|not a model directory"):
        vlm_judge.judge_stage([], {"model": str(tmp_path / "nope")})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gpic_lab.models import qwen_vl

    return qwen_vl.build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny_judge"))


def _samples(tmp_path: Path, blobs: list[bytes]) -> list:
    from gpic_lab.shards.reader import iter_samples
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    entries = []
    for i, data in enumerate(blobs):
        key = hashlib.sha256(data + bytes([i])).hexdigest()
        meta = new_record(key, 96, 80, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "test",
                          "2026-01-01T00:00:00Z", "short", "A test image.", ["full"])
        entries.append((key, meta, data, "jpg"))
    write_shard(tmp_path / "gpic_raw_judge.tar", entries)
    return list(iter_samples([tmp_path / "gpic_raw_judge.tar"]))


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def test_tiny_random_qwen3vl_runs_the_real_stage_on_cpu(tiny_model: Path, tmp_path: Path) -> None:
    samples = _samples(tmp_path, [_jpeg(0), _jpeg(1), b"\xff\xd8\xff broken", _jpeg(2)])
    params = {"model": str(tiny_model), "device": "cpu", "batch_size": 2, "max_new_tokens_quality": 6,
              "max_new_tokens_safety": 4, "min_pixels": 32 * 32, "max_pixels": 64 * 64}
    decisions = vlm_judge.judge_stage(samples, params)
    assert [d.key for d in decisions] == [s.key for s in samples]
    assert decisions[2].reason == "undecodable"
    judged = [d for i, d in enumerate(decisions) if i != 2]
    # random weights emit random bytes: nothing parses, so every judged sample is dropped conservatively
    assert all(d.reason == vlm_judge.UNPARSEABLE for d in judged)
    assert all("TINY RANDOM" in d.extra["judge_model"] and d.extra["judge_prompts"] == "quality/v1+safety/v1"
               for d in judged)
    assert all(set(d.extra) >= {"judge_raw_quality", "judge_raw_safety"} for d in judged)
    again = vlm_judge.judge_stage(samples, {**params, "batch_size": 3, "unparseable": "keep"})
    assert [d.extra.get("judge_raw_safety") for d in again] == [d.extra.get("judge_raw_safety") for d in decisions]
    assert [d.keep for d in again] == [True, True, False, True]


def test_judge_stage_through_the_engine(tiny_model: Path, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.engine.stages import run_stage

    params = {"model": str(tiny_model), "device": "cpu", "checks": ["safety"], "max_new_tokens_safety": 3,
              "min_pixels": 32 * 32, "max_pixels": 64 * 64}
    summary = run_stage("vlm-judge", [str(sample_dir / "raw" / "gpic_raw_quality.tar")], tmp_path / "j",
                        params=params, workers=1, progress=False)
    assert summary["samples"] == 9 and sum(summary["reasons"].values()) == 9


def test_one_combined_answer_feeds_both_checks() -> None:
    six = CLEAN + "\nUNSAFE: no"
    assert vlm_judge.decide({"quality": six, "safety": six}) == (None, {"judge_quality_flags": 0.0,
                                                                        "judge_safety_flags": 0.0})
    assert vlm_judge.decide({"quality": six.replace("UNSAFE: no", "UNSAFE: yes"),
                             "safety": six.replace("UNSAFE: no", "UNSAFE: yes")})[0] == "unsafe"
    assert vlm_judge.decide({"quality": CLEAN, "safety": CLEAN})[0] == vlm_judge.UNPARSEABLE  # UNSAFE line missing


def test_one_pass_runs_one_generation_per_batch(tiny_model: Path, tmp_path: Path) -> None:
    samples = _samples(tmp_path, [_jpeg(3), _jpeg(4)])
    params = {"model": str(tiny_model), "device": "cpu", "one_pass": True, "max_new_tokens_quality": 4,
              "max_new_tokens_safety": 2, "min_pixels": 32 * 32, "max_pixels": 64 * 64}
    decisions = vlm_judge.judge_stage(samples, params)
    assert all(d.extra["judge_prompts"] == "combined/v1" and "judge_raw_combined" in d.extra for d in decisions)
    assert all("judge_raw_quality" not in d.extra for d in decisions)
    assert all(d.reason == vlm_judge.UNPARSEABLE for d in decisions)
