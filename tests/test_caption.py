"""gpic_lab.caption.captioner: type mix per shard, prompts, real generation on the tiny model, resume, OOM backoff."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gpic_lab.caption import captioner as caption
from gpic_lab.caption import levels, store
from gpic_lab.errors import GpicError, UsageError


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gpic_lab.models import qwen_vl

    return qwen_vl.build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny_qwen_caption"))


@pytest.fixture(scope="module")
def captioner(tiny_model: Path) -> caption.TransformersCaptioner:
    return caption.TransformersCaptioner(tiny_model, device="cpu", max_new_tokens={lv: 6 for lv in levels.LEVELS})


def test_type_mix_per_shard_within_sampling_error() -> None:
    n_shards, per_shard = 8, 2500
    for s in range(n_shards):
        keys = [hashlib.sha256(f"{s}:{i}".encode()).hexdigest() for i in range(per_shard)]
        drawn = [levels.caption_type_for(k) for k in keys]
        for level, p in levels.MIX.items():
            frac = drawn.count(level) / per_shard
            sigma = (p * (1 - p) / per_shard) ** 0.5
            assert abs(frac - p) < 4 * sigma + 1e-9, (s, level, frac)
    key = "ab" * 32
    assert levels.caption_type_for(key) == levels.caption_type_for(key)  # deterministic
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(200)]
    assert [levels.caption_type_for(k, 0) for k in keys] != [levels.caption_type_for(k, 1) for k in keys]


def test_prompts_are_versioned_and_state_the_rules() -> None:
    versions = set()
    for level in levels.LEVELS:
        text, version = levels.load_prompt(level)
        assert version.startswith(f"{level}/v") and "+" in version
        assert "NOT VISIBLE." in text and '"image"' in text and "#" not in text.splitlines()[0]
        versions.add(version)
    assert len(versions) == 4
    assert "foreground" in levels.load_prompt("long")[0]
    assert "3 to 8 tags" in levels.load_prompt("tag")[0]
    with pytest.raises(UsageError, match="unknown caption level"):
        levels.load_prompt("huge")


def test_caption_shards_real_generation_on_tiny_model(tiny_shards, captioner, tmp_path: Path) -> None:
    import pandas as pd

    shards = tiny_shards(2, 4)
    stats = caption.caption_shards(shards, tmp_path / "out", captioner, batch_size=3, progress=False)
    assert stats["shards"] == 2 and stats["skipped"] == 0 and stats["captions"] == 8
    frame = store.load_captions(tmp_path / "out")
    assert list(frame.columns) == list(caption.COLUMNS)
    assert frame["key"].is_unique and len(frame) == 8
    assert all(frame["caption_type"] == frame["key"].map(levels.caption_type_for))
    assert (frame["model_warning"].str.contains("PLACEHOLDERS")).all()
    assert (frame["n_tokens"] <= frame["max_new_tokens"]).all() and (frame["n_tokens"] >= 1).all()
    assert frame["prompt_version"].str.match(r"^(tag|short|medium|long)/v\d+\+[0-9a-f]{8}$").all()
    assert (frame["sampling"] == '{"do_sample": false}').all()
    assert sorted(p.name for p in (tmp_path / "out" / "done").iterdir()) == \
        ["gpic_train_00000.done", "gpic_train_00001.done"]
    again = caption.caption_shards(shards, tmp_path / "again", captioner, batch_size=8, progress=False)
    assert again["captions"] == 8
    # greedy + deterministic: the batch size changes nothing
    pd.testing.assert_frame_equal(frame, store.load_captions(tmp_path / "again"))


def test_levels_all_gives_four_rows_per_key(tiny_shards, captioner, tmp_path: Path) -> None:
    shards = tiny_shards(1, 3)
    caption.caption_shards(shards, tmp_path / "all", captioner, levels="all", batch_size=4, progress=False)
    frame = store.load_captions(tmp_path / "all")
    assert len(frame) == 12
    assert all(tuple(g) == levels.LEVELS for _, g in frame.groupby("key")["caption_type"])
    with pytest.raises(UsageError, match="--levels"):
        caption.jobs_for([], "some", 0)


class _Interrupting:
    """The real tiny captioner, interrupted (like Ctrl-C) after ``limit`` batches."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit, self.calls = inner, limit, 0
        self.name, self.model, self.model_warning, self.sampling = (inner.name, inner.model, inner.model_warning,
                                                                    inner.sampling)

    def caption(self, images: list[Any], levels: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls > self.limit:
            raise KeyboardInterrupt
        return self.inner.caption(images, levels)


def test_resume_after_interruption_has_no_duplicates_or_gaps(tiny_shards, captioner, tmp_path: Path) -> None:
    from gpic_lab.shards.reader import iter_samples

    shards = tiny_shards(3, 4)
    out = tmp_path / "resume"
    with pytest.raises(KeyboardInterrupt):  # shard 0 complete (2 batches), shard 1 interrupted half-way
        caption.caption_shards(shards, out, _Interrupting(captioner, 3), batch_size=2, progress=False)
    assert [p.name for p in (out / "done").iterdir()] == ["gpic_train_00000.done"]
    assert [p.name for p in out.glob("*.captions.parquet")] == ["gpic_train_00000.captions.parquet"]
    stats = caption.caption_shards(shards, out, captioner, batch_size=2, progress=False)
    assert stats["skipped"] == 1 and stats["captions"] == 8
    frame = store.load_captions(out)
    assert frame["key"].is_unique
    assert set(frame["key"]) == {s.key for s in iter_samples(shards, images=False)}
    assert caption.caption_shards(shards, out, captioner, progress=False)["skipped"] == 3
    # resuming with another configuration would skip shards captioned differently: refused, --force redoes them
    with pytest.raises(UsageError, match="another configuration .*levels: 'auto' -> 'all'"):
        caption.caption_shards(shards, out, captioner, levels="all", progress=False)
    with pytest.raises(UsageError, match="seed: 0 -> 1"):
        caption.caption_shards(shards, out, captioner, seed=1, progress=False)
    with pytest.raises(UsageError, match="--levels must be auto or all"):
        caption.caption_shards(shards, out, captioner, levels="some", progress=False)
    assert json.loads((out / "caption_config.json").read_text())["levels"] == "auto"  # not recorded
    redo = caption.caption_shards(shards[:1], out, captioner, levels="all", force=True, progress=False)
    assert redo["skipped"] == 0 and redo["captions"] == 4 * 4
    assert json.loads((out / "caption_config.json").read_text())["levels"] == "all"


class _OomAbove:
    """The real tiny captioner that raises a CUDA-style OOM for batches larger than ``cap``."""

    def __init__(self, inner: Any, cap: int) -> None:
        self.inner, self.cap, self.sizes = inner, cap, []
        self.name, self.model, self.model_warning, self.sampling = (inner.name, inner.model, inner.model_warning,
                                                                    inner.sampling)

    def caption(self, images: list[Any], levels: list[str]) -> list[dict[str, Any]]:
        self.sizes.append(len(images))
        if len(images) > self.cap:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.caption(images, levels)


def test_oom_halves_the_batch_and_keeps_every_caption(tiny_shards, captioner, tmp_path: Path) -> None:
    shards = tiny_shards(1, 7)
    oom = _OomAbove(captioner, 2)
    caption.caption_shards(shards, tmp_path / "oom", oom, batch_size=8, progress=False)
    frame = store.load_captions(tmp_path / "oom")
    assert len(frame) == 7 and frame["key"].is_unique
    assert oom.sizes[:3] == [7, 4, 2] and max(oom.sizes[3:]) == 2  # halved, then kept at the working size
    with pytest.raises(GpicError, match="batch size 1"):
        caption.caption_shards(shards, tmp_path / "oom1", _OomAbove(captioner, 0), batch_size=2, progress=False)


def test_unknown_backend_and_missing_vllm_are_usage_errors(tiny_model: Path) -> None:
    with pytest.raises(UsageError, match="unknown backend"):
        caption.make_captioner(str(tiny_model), backend="onnx")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="vllm"):
            caption.make_captioner(str(tiny_model), backend="vllm")


def test_prepare_image_bounds_pixels() -> None:
    from conftest import make_image

    im = caption.prepare_image(make_image(3, 640, 480), 100 * 100)
    assert im.mode == "RGB" and im.width * im.height <= 100 * 100
    assert abs(im.width / im.height - 640 / 480) < 0.05
    assert caption.prepare_image(make_image(3, 64, 48, "PNG"), 100 * 100).size == (64, 48)


def test_16_bit_grey_png_is_not_fed_as_white() -> None:
    """PIL's convert("RGB") clips 16-bit grey at 255: the captioner must see the picture, not a white frame."""
    import io

    import numpy as np
    from PIL import Image

    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    im = caption.prepare_image(buf.getvalue(), None)
    arr = np.asarray(im)
    assert im.mode == "RGB" and arr.min() == 0 and arr.max() == 255 and 100 < arr.mean() < 155


def test_transparent_png_is_composited_on_white() -> None:
    """A black logo on a transparent (black-valued) background: convert("RGB") alone gives an all-black frame."""
    import io

    import numpy as np
    from PIL import Image

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48, 3] = 255  # opaque black square, everything else transparent black
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    arr = np.asarray(caption.prepare_image(buf.getvalue(), None))
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[32, 32].tolist() == [0, 0, 0]
    pal = Image.fromarray(rgba).convert("RGB").convert("P")  # palette image whose index 0 is transparent
    pal.info["transparency"] = 0
    assert np.asarray(caption.prepare_image(_png(pal), None))[0, 0].tolist() == [255, 255, 255]


def _png(im) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_cli_caption_tiny_model_and_bad_usage(tiny_shards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gpic_lab.commands.cli import main

    monkeypatch.setenv("GPIC_LAB_STATE", str(tmp_path / "state"))
    shards = tiny_shards(1, 2)
    args = ["caption", str(shards[0]), "--out", str(tmp_path / "cli"), "--model", "tiny", "--max-new-tokens", "4",
            "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["captions"] == 2
    assert "PLACEHOLDERS" in err and (tmp_path / "state" / "models" / "qwen3vl-tiny" / "config.json").is_file()
    assert main(args) == 0 and json.loads(capsys.readouterr()[0].splitlines()[-1])["skipped"] == 1
    assert main([*args[:-2], "--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr()[1]
    assert main(["caption", str(shards[0]), "--out", str(tmp_path / "x"), "--model", str(tmp_path / "nope")]) == 2
    assert "model directory not found" in capsys.readouterr()[1]


def test_bench_projection_and_lengths() -> None:
    from gpic_lab.benches import caption as bench

    rows = {lv: {"ours": {"images_per_s": r}} for lv, r in (("tag", 100.0), ("short", 50.0), ("medium", 40.0),
                                                            ("long", 10.0))}
    proj = bench.projection(rows, on_h100=True)
    assert proj["short_h100_hours_100M"] == round(1e8 / 50 / 3600, 1)
    assert proj["short_vs_gpic"] == round(50 / 56.1, 3)
    expected = 1e8 * (0.01 / 100 + 0.45 / 50 + 0.45 / 40 + 0.09 / 10) / 3600
    assert proj["mix_h100_hours_100M"] == round(expected, 1)
    assert bench.projection({"short": rows["short"]}, on_h100=False)["mix_h100_hours_100M"] is None
    lengths = bench.caption_lengths()
    assert lengths["tag"] < lengths["short"] < lengths["medium"] < lengths["long"]


def test_corrupt_samples_raise_or_are_skipped_and_counted(sample_dir: Path, captioner, tmp_path: Path) -> None:
    from gpic_lab.errors import ShardError

    broken = [str(sample_dir / "broken" / n) for n in ("badjson.tar", "images.tar", "truncated.tar")]
    with pytest.raises(ShardError, match="bad-json"):
        caption.caption_shards(broken[:1], tmp_path / "raise", captioner, progress=False)
    with pytest.raises(GpicError, match="image-decode"):
        caption.caption_shards(broken[1:2], tmp_path / "raise2", captioner, progress=False)
    stats = caption.caption_shards(broken, tmp_path / "skip", captioner, progress=False, on_corrupt="skip")
    assert stats["skipped_samples"] == {"bad-json": 3, "image-decode": 3, "truncated-tar": 1}
    frame = store.load_captions(tmp_path / "skip")
    assert len(frame) == stats["captions"] > 0 and frame["key"].is_unique
    with pytest.raises(UsageError, match="on-corrupt"):
        caption.caption_shards(broken[:1], tmp_path / "bad", captioner, progress=False, on_corrupt="ignore")
    # schema.tar has records whose img_width/img_height are not numbers: the size sort must not crash on them
    schema = caption.caption_shards([str(sample_dir / "broken" / "schema.tar")], tmp_path / "schema", captioner,
                                    progress=False, on_corrupt="skip")
    assert schema["captions"] > 0 and schema["skipped_samples"] == {}
