"""torch integration of the GPIC loader: an IterableDataset, a collate function, a DataLoader factory and a
consumer-side resume tracker. Importing this module imports torch (import it only where you train)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.loader.augment import Encoded, release_cv2_threads
from gpic_lab.loader.stream import StreamConfig, _dist_info, iter_slot, stream_config


class GpicIterableDataset(IterableDataset):
    """GPIC shards as a stream of {"image": uint8 HWC, "caption", "caption_type", "key", "slot", "index", "member"}
    (`collate` stacks the images to uint8 [B,3,H,W]).

    Args:
        paths: shard files, directories or URLs.
        tier: nano | lite | full (the first 1 % / 10 % / 100 % of the train shards, read from the pack manifest or
            the records' split field: GPIC's 80 / 800 / 8,000), or None for all given shards.
        caption_types: keep only these caption types (the rest are counted as filtered).
        transform: bytes, rng -> uint8 HWC array (default: GPIC's training augmentation on the CPU), or
            `DeferredTrainTransform()` to leave JPEGs encoded for `batch_decode.BatchDecoder` (nvJPEG on the GPU).
        shuffle_buffer, seed: bounded shuffle and per-epoch shard shuffling.
        world_size, rank: default from torch.distributed or WORLD_SIZE/RANK.
        on_corrupt: 'raise' (default) or 'skip' (skips are counted by reason, reported per epoch).
    """

    def __init__(self, paths: Sequence[str], tier: str | None = None, world_size: int | None = None,
                 rank: int | None = None, **config: Any) -> None:
        super().__init__()
        release_cv2_threads()  # before any worker is forked (see there)
        self.cfg: StreamConfig = stream_config(paths, tier, **config)
        self.world_size, self.rank = _dist_info(world_size, rank)
        self.epoch = 0
        self._resume: dict[int, int] = {}
        self._resume_slots: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order and shuffles are seeded by it); clears any resume position."""
        if epoch != self.epoch:
            self._resume, self._resume_slots = {}, None
        self.epoch = epoch

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a ResumeTracker.state_dict(): same epoch, skip what each slot already delivered."""
        self.epoch = int(state["epoch"])
        self._resume = {int(k): int(v) for k, v in state["consumed"].items()}
        self._resume_slots = int(state["slots"])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        slots = self.world_size * workers
        if self._resume_slots is not None and self._resume_slots != slots:
            raise UsageError(f"resume state was saved with {self._resume_slots} slots (ranks × workers), now {slots}")
        slot = self.rank * workers + worker
        for item in iter_slot(self.cfg, self.epoch, slot, slots, skip=self._resume.get(slot, 0)):
            if isinstance(item.get("image"), np.ndarray):
                item["image"] = torch.from_numpy(np.ascontiguousarray(item["image"]))  # HWC; collate makes NCHW
            yield item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (uint8 [B,3,H,W]); keep captions/keys as lists; merge per-slot end-of-epoch stats."""
    samples = [i for i in items if "image" in i]
    stats: Counter = Counter()
    for marker in (i for i in items if "__stats__" in i):
        stats.update(marker["__stats__"])
    batch: dict[str, Any] = {
        "caption": [s["caption"] for s in samples], "caption_type": [s["caption_type"] for s in samples],
        "key": [s["key"] for s in samples], "slot": torch.tensor([s["slot"] for s in samples], dtype=torch.long),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.long), "stats": dict(stats),
        "slots_finished": [i["slot"] for i in items if "__stats__" in i],
        "member": [s["member"] for s in samples],
    }
    if samples and isinstance(samples[0]["image"], Encoded):
        batch.update(_pack_encoded([s["image"] for s in samples]))
    else:
        batch["image"] = _stack_images([s["image"] for s in samples])
    return batch


def _pack_encoded(encoded: list[Encoded]) -> dict[str, Any]:
    """Deferred samples as tensors that cross processes in shared memory: the JPEG bytes back to back
    (`jpeg_data`, `jpeg_offsets` [B+1]; empty for pre-decoded samples), the crop draws (`crop` [B,4]: scale, fx,
    fy, flip) and the samples transformed on the CPU (`predecoded` [K,3,H,W] at `predecoded_at` [K])."""
    sizes = [len(e.data) if e.data is not None else 0 for e in encoded]
    data = _shared_buffer(sum(sizes), torch.uint8)
    if data is None:
        data = torch.empty(sum(sizes), dtype=torch.uint8)
    view, pos = data.numpy(), 0
    for e, n in zip(encoded, sizes, strict=True):
        if n:
            view[pos:pos + n] = np.frombuffer(e.data, dtype=np.uint8)
            pos += n
    pre = [(i, torch.from_numpy(np.ascontiguousarray(e.image))) for i, e in enumerate(encoded) if e.image is not None]
    return {"jpeg_data": data, "jpeg_offsets": torch.tensor(np.concatenate([[0], np.cumsum(sizes)]), dtype=torch.long),
            "crop": torch.tensor([[e.params.scale, e.params.fx, e.params.fy, float(e.params.flip)] for e in encoded],
                                 dtype=torch.float64),
            "predecoded": _stack_images([img for _, img in pre]),
            "predecoded_at": torch.tensor([i for i, _ in pre], dtype=torch.long)}


def _stack_images(images: list[Any]) -> Any:
    """uint8 [B,3,H,W] in channels_last layout: HWC images stacked as they are (no CPU transpose; the permute is a
    view), straight into shared memory inside a DataLoader worker (no copy when the batch crosses processes)."""
    if not images:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    out = _shared_buffer(sum(x.numel() for x in images), images[0].dtype)
    if out is not None:
        out = out.resize_(len(images), *images[0].shape)
    return torch.stack(images, out=out).permute(0, 3, 1, 2)


def _shared_buffer(numel: int, dtype: torch.dtype) -> torch.Tensor | None:
    """An empty 1-D tensor allocated in shared memory when called in a DataLoader worker (as torch's
    default_collate does: the batch then crosses to the training process without a copy); None elsewhere."""
    if get_worker_info() is None:
        return None
    proto = torch.empty(0, dtype=dtype)
    return proto.new(proto._typed_storage()._new_shared(numel))


def make_loader(dataset: GpicIterableDataset, batch_size: int = 64, num_workers: int = 2,
                pin_memory: bool | None = None, prefetch_factor: int = 4) -> DataLoader:
    """A DataLoader with our collate; pinned memory when CUDA is present."""
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    if num_workers > 0:
        release_cv2_threads()  # OpenCV used since the dataset was made would deadlock forked workers
    extra = {"prefetch_factor": prefetch_factor, "persistent_workers": False} if num_workers > 0 else {}
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                      pin_memory=pin, **extra)


class ResumeTracker:
    """Counts what the training loop actually consumed per slot; its state resumes a dataset mid-epoch."""

    def __init__(self, dataset: GpicIterableDataset, num_workers: int) -> None:
        self.epoch = dataset.epoch
        self.slots = dataset.world_size * max(1, num_workers)
        self.consumed: dict[int, int] = dict(dataset._resume)
        self.stats: Counter = Counter()

    def update(self, batch: dict[str, Any]) -> None:
        for slot, index in zip(batch["slot"].tolist(), batch["index"].tolist(), strict=True):
            self.consumed[slot] = max(self.consumed.get(slot, 0), index + 1)
        self.stats.update(batch["stats"])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "slots": self.slots, "consumed": dict(self.consumed)}


def gpu_decode(jpegs: Sequence[Any], device: str = "cuda") -> list[Any]:
    """Decode JPEGs (bytes or 1-D uint8 CPU tensors) on the GPU with nvJPEG through torchvision (GPU boxes with
    torchvision installed) → uint8 CHW tensors on `device` (1 channel for greyscale JPEGs)."""
    try:
        from torchvision.io import decode_jpeg
    except ImportError as exc:
        raise GpicError("GPU decoding needs torchvision with CUDA (pip install torchvision matching your CUDA torch)") from exc
    if not torch.cuda.is_available():
        raise GpicError("GPU decoding needs a CUDA device")
    data = [b if isinstance(b, torch.Tensor) else torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
    return decode_jpeg(data, device=device)
