"""The training loader: exactly-once partitioning, resume, tiers, caption filters, corrupt-sample policy."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image

from gpic_lab.errors import UsageError
from gpic_lab.loader.augment import EvalTransform, TrainTransform, crop_box, draw_params, pil_train_transform
from gpic_lab.loader.stream import (
    CorruptSampleError,
    StreamConfig,
    iter_slot,
    plan_units,
    stream_config,
    tier_shards,
)
from gpic_lab.shards.reader import iter_samples


def _all_keys(paths: list[Path]) -> list[str]:
    return [s.key for s in iter_samples(paths, images=False)]


def _keys_over_slots(cfg: StreamConfig, slots: int, epoch: int = 0) -> list[str]:
    return [i["key"] for slot in range(slots) for i in iter_slot(cfg, epoch, slot, slots) if "key" in i]


@pytest.mark.parametrize("n_shards,per_shard", [(1, 7), (3, 5), (5, 3)])
@pytest.mark.parametrize("world,workers", [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_every_sample_exactly_once(tiny_shards, n_shards: int, per_shard: int, world: int, workers: int) -> None:
    paths = tiny_shards(n_shards, per_shard)
    cfg = stream_config([str(p) for p in paths], transform=TrainTransform(size=32), shuffle_buffer=4)
    seen = _keys_over_slots(cfg, world * workers)
    assert Counter(seen) == Counter(_all_keys(paths))


def test_dataloader_workers_exactly_once_and_resume(tiny_shards) -> None:
    from gpic_lab.loader.torch_loader import GpicIterableDataset, ResumeTracker, make_loader

    paths = [str(p) for p in tiny_shards(3, 6)]
    ds = GpicIterableDataset(paths, transform=TrainTransform(size=32), shuffle_buffer=3, seed=7, world_size=1, rank=0)
    tracker = ResumeTracker(ds, num_workers=2)
    first = []
    for i, batch in enumerate(make_loader(ds, batch_size=2, num_workers=2, prefetch_factor=2)):
        first += batch["key"]
        tracker.update(batch)
        if i == 3:
            break
    state = tracker.state_dict()
    ds2 = GpicIterableDataset(paths, transform=TrainTransform(size=32), shuffle_buffer=3, seed=7, world_size=1, rank=0)
    ds2.load_state_dict(state)
    rest = [k for b in make_loader(ds2, batch_size=2, num_workers=2, prefetch_factor=2) for k in b["key"]]
    assert len(first) == 8
    assert Counter(first + rest) == Counter(_all_keys([Path(p) for p in paths]))
    with pytest.raises(UsageError):  # resuming with a different worker count would misplace samples
        list(make_loader(ds2, batch_size=2, num_workers=1))


def test_batches_from_a_worker_equal_in_process_batches(tiny_shards) -> None:
    import torch

    from gpic_lab.loader.torch_loader import GpicIterableDataset, collate, make_loader

    paths = [str(p) for p in tiny_shards(2, 5)]
    ds = GpicIterableDataset(paths, transform=TrainTransform(size=32, flip=True), shuffle_buffer=4, seed=5,
                             world_size=1, rank=0)
    via_worker = next(iter(make_loader(ds, batch_size=4, num_workers=1)))  # stacked into shared memory
    in_process = collate([item for _, item in zip(range(4), iter(ds), strict=False)])
    for batch in (via_worker, in_process):
        assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.uint8
        assert batch["image"].is_contiguous(memory_format=torch.channels_last)  # no CPU transpose was made
    assert via_worker["key"] == in_process["key"]
    assert torch.equal(via_worker["image"], in_process["image"])
    first = in_process["image"][0].permute(1, 2, 0).numpy()  # channel order is RGB, as the transform made it
    assert first.shape == (32, 32, 3) and first.std() > 0


def test_epochs_reshuffle_deterministically(tiny_shards) -> None:
    cfg = stream_config([str(p) for p in tiny_shards(4, 4)], transform=TrainTransform(size=32), seed=3)
    e0, e0_again, e1 = (_keys_over_slots(cfg, 1, epoch) for epoch in (0, 0, 1))
    assert e0 == e0_again and e0 != e1 and sorted(e0) == sorted(e1)
    units = plan_units(cfg.shards, slots=10, epoch=0, seed=3)
    assert len(units) >= 10 and {u.stride for u in units} == {3}


def test_tier_selection_reads_the_records_not_the_shard_index(tmp_path: Path) -> None:
    """Tiers come from the records' split lists (here: shard 0 in all tiers, 1-2 in lite+full, 3 only in full),
    whatever the shard count; val shards (split []) are in no tier."""
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    tiers = [["nano", "lite", "full"], ["lite", "full"], ["lite", "full"], ["full"]]
    shards = []
    for i, split in enumerate([*tiers, []]):
        data = make_image(500 + i)
        key = hashlib.sha256(data).hexdigest()
        name = f"gpic_train_{i:05d}.tar" if i < 4 else "gpic_val_00000.tar"
        meta = new_record(key, 320, 240, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "x",
                          "2026-01-01T00:00:00Z", "short", "A gradient.", split)
        write_shard(tmp_path / name, [(key, meta, data, "jpg")])
        shards.append(str(tmp_path / name))
    assert tier_shards(shards, "nano") == shards[:1]
    assert tier_shards(shards, "lite") == shards[:3]
    assert tier_shards(shards, "full") == shards[:4]
    assert tier_shards(shards, None) == shards
    with pytest.raises(UsageError):
        tier_shards(shards, "mega")


def test_caption_type_filter_counts_what_it_drops(tiny_shards) -> None:
    cfg = stream_config([str(p) for p in tiny_shards(1, 8)], transform=TrainTransform(size=32), caption_types=("short",))
    items = list(iter_slot(cfg, 0, 0, 1))
    kept = [i for i in items if "key" in i]
    assert kept and all(i["caption_type"] == "short" for i in kept)
    assert items[-1]["__stats__"]["filtered:caption_type"] == 8 - len(kept)


def _shard_with_corrupt_image(tmp_path: Path) -> Path:
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    entries = []
    for i, data in enumerate([make_image(1), b"\xff\xd8\xff\xe0 this is not a jpeg", make_image(2)]):
        key = hashlib.sha256(data).hexdigest()
        meta = new_record(key, 320, 240, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "x",
                          "2026-01-01T00:00:00Z", "short", f"caption {i}", [])
        entries.append((key, meta, data, "jpg"))
    path = tmp_path / "gpic_train_00000.tar"
    write_shard(path, entries)
    return path


def test_corrupt_image_raises_by_default_and_is_counted_when_skipping(tmp_path: Path) -> None:
    path = _shard_with_corrupt_image(tmp_path)
    with pytest.raises(CorruptSampleError, match="image-decode"):
        list(iter_slot(stream_config([str(path)], transform=TrainTransform(size=32)), 0, 0, 1))
    items = list(iter_slot(stream_config([str(path)], transform=TrainTransform(size=32), on_corrupt="skip"), 0, 0, 1))
    assert len([i for i in items if "key" in i]) == 2
    assert items[-1]["__stats__"] == {"skipped:image-decode": 1}


def test_truncated_shard_ends_and_is_counted(tiny_shards, tmp_path: Path) -> None:
    good = tiny_shards(1, 6)[0]
    cut = tmp_path / "gpic_train_00001.tar"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cfg = stream_config([str(cut)], transform=TrainTransform(size=32), on_corrupt="skip")
    items = list(iter_slot(cfg, 0, 0, 1))  # terminates: no endless retry on a local truncated shard
    assert items[-1]["__stats__"].get("skipped:truncated-tar", 0) >= 1
    assert 0 < len(items) - 1 < 6


def test_fast_train_transform_matches_pil_reference() -> None:
    import io

    from PIL import Image

    data = make_image(5, 590, 480)
    for seed in range(5):
        ours = TrainTransform()(data, np.random.default_rng(seed)).astype(np.float32) / 255
        ref = pil_train_transform(Image.open(io.BytesIO(data)), np.random.default_rng(seed)).transpose(1, 2, 0)
        assert ours.shape == ref.shape == (256, 256, 3)
        assert np.abs(ours - ref).mean() < 0.03  # same crop, comparable interpolation


def test_crop_geometry_and_eval_transform() -> None:
    p = draw_params(np.random.default_rng(0))
    left, top, right, bottom = crop_box(590, 480, p)
    assert right - left == bottom - top == round(p.scale * 480) and 0 <= left and right <= 590 and bottom <= 480
    out = EvalTransform()(make_image(3, 400, 300))
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8


@pytest.mark.gpu
def test_gpu_decode_matches_pil_or_says_what_is_missing() -> None:
    import importlib.util
    import io

    import numpy as np
    import torch
    from PIL import Image

    from gpic_lab.errors import GpicError
    from gpic_lab.loader.torch_loader import gpu_decode

    rng = np.random.default_rng(0)
    arr = np.asarray(Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((96, 64)))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    if importlib.util.find_spec("torchvision") is None or not torch.cuda.is_available():
        with pytest.raises(GpicError, match="torchvision|CUDA"):
            gpu_decode([buf.getvalue()])
        return
    out = gpu_decode([buf.getvalue(), buf.getvalue()])
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.int16)
    assert len(out) == 2 and out[0].is_cuda and tuple(out[0].shape) == (3, 64, 96)
    diff = out[0].permute(1, 2, 0).cpu().numpy().astype(np.int16) - ref  # nvJPEG upsamples chroma its own way
    psnr = 10 * np.log10(255.0**2 / max(float((diff.astype(np.float64) ** 2).mean()), 1e-9))
    assert psnr > 28, psnr  # 33.8 dB on an H100 (torchvision 0.26 nvJPEG vs Pillow)


@pytest.mark.slow
def test_bench_loader_reports_per_cpu_rates_and_paired_plain_decode(sample_dir: Path, capsys) -> None:
    import json
    import math

    from gpic_lab.commands.cli import main

    rc = main(["bench", "loader", "--quick", str(sample_dir / "train"), "--images", "40", "--batch", "8"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["unit"].startswith("images per CPU-second")
    row = result["by_workers"][0]
    for value in (row["ours_per_cpu_s"], row["baseline_per_cpu_s"], result["plain_pil_decode_per_core"]):
        assert math.isfinite(value) and 0 < value < 1e5  # a CPU time of zero would show up as ~1e11
    assert result["ratio"] == pytest.approx(result["ours"] / result["baseline"], rel=1e-2)  # medians of 3 rounds
    assert len(result["ratio_rounds"]) == 3 and len(result["ratio_vs_plain_decode_rounds"]) == 3
    sweep_pair = row["ours_per_cpu_s"] / row["baseline_per_cpu_s"]  # the first round reuses the sweep's pair
    assert any(r == pytest.approx(sweep_pair, abs=2e-3) for r in result["ratio_rounds"])
    assert min(result["ratio_vs_plain_decode_rounds"]) <= result["ratio_vs_plain_decode"] <= max(
        result["ratio_vs_plain_decode_rounds"])


def test_workers_forked_after_opencv_ran_threaded_do_not_deadlock(tiny_shards) -> None:
    import subprocess
    import sys

    paths = [str(p) for p in tiny_shards(1, 5)]
    script = f"""
import cv2, numpy as np
cv2.setNumThreads(2)
cv2.GaussianBlur(np.zeros((2000, 2000, 3), np.uint8), (15, 15), 3)  # OpenCV's thread pool now exists
from gpic_lab.loader.augment import TrainTransform
from gpic_lab.loader.torch_loader import GpicIterableDataset, make_loader
loader = make_loader(GpicIterableDataset({paths!r}, transform=TrainTransform(size=32), world_size=1, rank=0),
                     batch_size=2, num_workers=1)
loader.timeout = 30  # a deadlocked worker shows up as a DataLoader timeout, not a hung test
print(sum(len(b["key"]) for b in loader))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "5"


def test_sample_generators_depend_on_seed_epoch_slot_and_index_only() -> None:
    """A sample's crop draw is a function of (seed, epoch, slot, index), whatever was drawn before (what resume
    relies on), and differs between samples, slots, epochs and seeds."""
    from gpic_lab.loader.stream import SampleRngs

    rngs = SampleRngs(7, 1, 2)
    first = rngs(5).uniform(size=4)
    rngs(6).uniform(size=100)  # another sample drawing more than a crop needs
    assert np.array_equal(rngs(5).uniform(size=4), first)
    assert np.array_equal(SampleRngs(7, 1, 2)(5).uniform(size=4), first)  # a fresh slot iterator (resume)
    others = [rngs(6), SampleRngs(7, 1, 3)(5), SampleRngs(7, 2, 2)(5), SampleRngs(8, 1, 2)(5)]
    assert all(not np.array_equal(g.uniform(size=4), first) for g in others)
