"""Crafted images: pixel bombs (PNG and JPEG headers claiming 30000 x 30000) and a JPEG cut in its entropy-coded
data and closed again with an end marker. Each is a counted problem with its documented reason in `validate`,
`catalog --check-images`, `stage quality` and the training loader; never a crash, never kept."""

from __future__ import annotations

from pathlib import Path

import crafted
import pandas as pd
import pytest

from gpic_lab.filters import quality

cli = crafted.cli
BOMBS = {"bomb-png": (crafted.bomb_png(), "png"), "bomb-jpeg": (crafted.bomb_jpeg(), "jpg")}


def _shard(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "in" / "gpic_train_00000.tar"
    if case == "reterminated":
        return crafted.image_shard(path, crafted.reterminated_jpeg(), img_width=640, img_height=480)
    data, ext = BOMBS[case]
    return crafted.image_shard(path, data, ext, img_width=30000, img_height=30000)


EXPECTED = {"bomb-png": ("too-many-pixels", "extreme-resolution", "too-many-pixels"),
            "bomb-jpeg": ("too-many-pixels", "extreme-resolution", "too-many-pixels"),
            "reterminated": ("image-decode", "undecodable", "image-decode")}  # validate, quality, loader


def test_pillow_decodes_the_reterminated_jpeg_without_complaint() -> None:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(crafted.reterminated_jpeg())) as im:
        im.load()  # the premise: only a strict decoder notices the missing entropy-coded data


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_quality_check_image(case: str) -> None:
    data = crafted.reterminated_jpeg() if case == "reterminated" else BOMBS[case][0]
    for reduced in (True, False):
        assert quality.check_image(data, reduced=reduced)[0] == EXPECTED[case][1]


def test_an_intact_jpeg_is_still_kept_in_both_decoding_modes() -> None:
    data = crafted.jpeg(9, 640, 480)
    assert quality.check_image(data, reduced=True)[0] == quality.check_image(data, reduced=False)[0]
    assert quality.check_image(data)[0] != "undecodable"


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_validate(tmp_path: Path, case: str) -> None:
    rc, out, err = cli(["validate", str(_shard(tmp_path, case)), "--workers", "1", "--no-progress"])
    assert rc == 1, err
    assert f": {EXPECTED[case][0]}: " in out and "1 sample(s)" not in err


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_catalog_check_images_quarantines(tmp_path: Path, case: str) -> None:
    out = tmp_path / "c.parquet"
    rc, _, err = cli(["catalog", str(_shard(tmp_path, case)), "-o", str(out), "--check-images", "--on-error",
                      "quarantine", "--workers", "1"])
    assert rc == 0, err
    assert EXPECTED[case][0] in set(pd.read_parquet(tmp_path / "c.quarantine.parquet")["code"])
    assert len(pd.read_parquet(out)) == 1


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_stage_quality(tmp_path: Path, case: str) -> None:
    out = tmp_path / "q"
    rc, _, err = cli(["stage", "quality", str(_shard(tmp_path, case)), "--out", str(out), "--workers", "1",
                      "--no-progress"])
    assert rc == 0, err
    frame = pd.read_parquet(out / "decisions.parquet")
    assert EXPECTED[case][1] in set(frame["reason"]) and int(frame["keep"].sum()) == 1


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_loader_skip_counts_and_raise_names_the_sample(tmp_path: Path, case: str) -> None:
    from gpic_lab.loader.augment import TrainTransform
    from gpic_lab.loader.stream import CorruptSampleError, iter_slot, stream_config

    shard = str(_shard(tmp_path, case))
    items = list(iter_slot(stream_config([shard], transform=TrainTransform(size=32), on_corrupt="skip"), 0, 0, 1))
    assert len([i for i in items if "key" in i]) == 1
    assert items[-1]["__stats__"] == {f"skipped:{EXPECTED[case][2]}": 1}
    with pytest.raises(CorruptSampleError, match=EXPECTED[case][2]):
        list(iter_slot(stream_config([shard], transform=TrainTransform(size=32)), 0, 0, 1))
