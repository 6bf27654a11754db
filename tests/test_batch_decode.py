"""Deferred decoding: workers ship JPEG bytes and crop draws, the consumer decodes whole batches (nvJPEG on a GPU,
libjpeg-turbo on the CPU here) with the same crops as the CPU transform."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image

from gpic_lab.errors import UsageError
from gpic_lab.loader.augment import (
    DeferredTrainTransform,
    Encoded,
    TrainTransform,
    draw_params,
    pil_train_transform,
)
from gpic_lab.loader.stream import CorruptSampleError


def _loader(paths: list[str], transform, batch: int = 4, workers: int = 1, **kw):
    from gpic_lab.loader.torch_loader import GpicIterableDataset, make_loader

    ds = GpicIterableDataset(paths, transform=transform, shuffle_buffer=4, seed=5, world_size=1, rank=0, **kw)
    return make_loader(ds, batch_size=batch, num_workers=workers, prefetch_factor=2)


def test_deferred_batches_equal_the_cpu_transform_crop_for_crop(tiny_shards) -> None:
    import torch

    from gpic_lab.loader.batch_decode import BatchDecoder

    paths = [str(p) for p in tiny_shards(2, 5)]  # every fifth image is a PNG: transformed in the worker
    decode = BatchDecoder(size=32, device="cpu")
    deferred = list(_loader(paths, DeferredTrainTransform(size=32, flip=True)))
    cpu = list(_loader(paths, TrainTransform(size=32, flip=True)))
    assert deferred[0]["jpeg_data"].is_shared() and "image" not in deferred[0]  # bytes crossed in shared memory
    assert sum(len(b["predecoded_at"]) for b in deferred) == 2
    for raw, ref in zip(deferred, cpu, strict=True):
        out = decode(raw)
        assert out["key"] == ref["key"] and torch.equal(out["index"], ref["index"])
        assert out["image"].shape == ref["image"].shape and out["image"].dtype == torch.uint8
        diff = (out["image"].float() - ref["image"].float()).abs().mean(dim=(1, 2, 3))
        assert float(diff.max()) < 8, diff  # same crop and flip, two antialiased filters
        for i in raw["predecoded_at"].tolist():  # PNGs: the very same CPU transform
            assert torch.equal(out["image"][i], ref["image"][i])
    assert decode(cpu[0]) is cpu[0]  # an already decoded batch passes through


def test_decoder_matches_the_pil_reference_on_a_gpic_sized_image() -> None:
    from PIL import Image

    from gpic_lab.loader.batch_decode import BatchDecoder
    from gpic_lab.loader.torch_loader import collate

    data = make_image(5, 590, 480)
    for seed in range(4):
        enc = DeferredTrainTransform()(data, np.random.default_rng(seed))
        assert isinstance(enc, Encoded) and enc.data == data and enc.params == draw_params(np.random.default_rng(seed))
        item = {"image": enc, "caption": "", "caption_type": "short", "key": "k", "slot": 0, "index": 0, "member": "m"}
        ours = BatchDecoder(device="cpu")(collate([item]))["image"][0].permute(1, 2, 0).numpy().astype(np.float32) / 255
        ref = pil_train_transform(Image.open(io.BytesIO(data)), np.random.default_rng(seed)).transpose(1, 2, 0)
        assert ours.shape == ref.shape == (256, 256, 3)
        assert np.abs(ours - ref).mean() < 0.03


def _shard(tmp_path: Path, blobs: list[bytes]) -> str:
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    entries = []
    for i, data in enumerate(blobs):
        key = hashlib.sha256(data).hexdigest()
        meta = new_record(key, 320, 240, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "x",
                          "2026-01-01T00:00:00Z", "short", f"caption {i}", [])
        entries.append((key, meta, data, "jpg"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "gpic_train_00000.tar"
    write_shard(path, entries)
    return str(path)


def test_a_jpeg_whose_body_is_cut_raises_naming_the_member_or_is_skipped_and_counted(tmp_path: Path) -> None:
    from gpic_lab.loader.batch_decode import BatchDecoder

    cut = make_image(9)[:3000]  # the header reads fine, so the worker passes it on; the decode fails
    path = _shard(tmp_path, [make_image(1), cut, make_image(2)])
    batch = next(iter(_loader([path], DeferredTrainTransform(size=32), batch=3, workers=0)))
    bad_key = hashlib.sha256(cut).hexdigest()
    with pytest.raises(CorruptSampleError, match=f"gpic_train_00000.tar:{bad_key}.jpg: image-decode"):
        BatchDecoder(size=32, device="cpu")(dict(batch))
    out = BatchDecoder(size=32, device="cpu", on_corrupt="skip")(dict(batch))
    assert len(out["key"]) == len(out["caption"]) == len(out["index"]) == out["image"].shape[0] == 2
    assert bad_key not in out["key"] and out["stats"].get("skipped:image-decode") == 1


def test_a_broken_jpeg_header_is_caught_in_the_worker_by_the_loader_policy(tmp_path: Path) -> None:
    path = _shard(tmp_path, [make_image(1), b"\xff\xd8\xff\xe0 this is not a jpeg"])
    with pytest.raises(CorruptSampleError, match="image-decode"):
        list(_loader([path], DeferredTrainTransform(size=32), workers=0))
    batches = list(_loader([path], DeferredTrainTransform(size=32), workers=0, on_corrupt="skip"))
    assert sum(len(b["key"]) for b in batches) == 1
    assert sum(b["stats"].get("skipped:image-decode", 0) for b in batches) == 1


def test_bad_policy_is_a_usage_error() -> None:
    from gpic_lab.loader.batch_decode import BatchDecoder

    with pytest.raises(UsageError):
        BatchDecoder(device="cpu", on_corrupt="ignore")


@pytest.mark.gpu
def test_nvjpeg_batches_match_the_cpu_decoder(tiny_shards, tmp_path: Path) -> None:
    import torch

    from gpic_lab.loader.batch_decode import BatchDecoder

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from PIL import Image

    grey = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)).save(grey, "JPEG")
    paths = [str(p) for p in tiny_shards(2, 5)] + [_shard(tmp_path / "grey", [grey.getvalue()])]
    for batch in _loader(paths, DeferredTrainTransform(size=64, flip=True), batch=6):
        gpu = BatchDecoder(size=64, device="cuda")(dict(batch))
        cpu = BatchDecoder(size=64, device="cpu")(dict(batch))
        assert gpu["image"].is_cuda and gpu["key"] == cpu["key"]
        mse = ((gpu["image"].cpu().float() - cpu["image"].float()) ** 2).mean()
        assert 10 * torch.log10(255.0**2 / mse.clamp_min(1e-9)) > 28  # nvJPEG upsamples chroma its own way


@pytest.mark.slow
def test_bench_loader_batch_mode_counts_the_consumer_cpu(sample_dir: Path, capsys) -> None:
    import json
    import math

    import torch

    from gpic_lab.commands.cli import main

    rc = main(["bench", "loader", "--quick", str(sample_dir / "train"), "--images", "24", "--batch", "8",
               "--decode", "batch"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["decode"] == "batch" and result["unit"].endswith("and of the decoding consumer")
    assert result["decode_device"] == ("cuda (nvJPEG, consumer)" if torch.cuda.is_available() else "cpu (consumer)")
    assert math.isfinite(result["ours"]) and 0 < result["ours"] < 1e5
    assert set(result["decode_floor_per_core_jpegs"]) == {"decode_at_1_8_scale", "libjpeg_turbo_full_decode",
                                                          "plain_pil_decode", "train_transform_in_process"}


def test_the_bench_floor_decodes_at_an_eighth_of_the_size() -> None:
    """The entropy-decoding floor the loader bench reports is a real 1/8-scale decode (not a full one)."""
    import io

    from PIL import Image

    from gpic_lab.benches.loader import _decode_eighth

    buf = io.BytesIO()
    Image.new("RGB", (590, 480), (200, 90, 40)).save(buf, "JPEG")
    assert _decode_eighth(buf.getvalue()).shape == (60, 74, 3)
