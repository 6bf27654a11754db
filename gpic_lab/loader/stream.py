"""A torch IterableDataset over GPIC shards for training.

Every sample is seen exactly once per epoch across nodes × ranks × dataloader workers: shards are shuffled per
epoch (seeded), each shard is cut into K interleaved units (sample i of a shard belongs to unit i % K, with K
large enough that there are at least as many units as worker slots), and units are dealt round-robin to the
slots. Within a slot, a bounded seeded shuffle buffer mixes samples. The position is resumable at sample
granularity: a slot's output order is deterministic, so resuming skips the first n outputs before decoding.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.loader.augment import TrainTransform
from gpic_lab.shards.reader import Problem, iter_entries, list_shards


class CorruptSampleError(GpicError):
    """A corrupt sample or shard met with on_corrupt='raise'."""


@dataclass(frozen=True, slots=True)
class Unit:
    """Samples i of `shard` with i % stride == part."""

    shard: str
    part: int
    stride: int


def tier_shards(shards: Sequence[str], tier: str | None, manifest: str | os.PathLike[str] | None = None) -> list[str]:
    """The shards of a tier, from the pack manifest or the records' ``split`` field (``loader.tier_select``);
    all shards for None."""
    from gpic_lab.loader.tier_select import select

    return select(shards, tier, manifest)


def plan_units(shards: Sequence[str], slots: int, epoch: int, seed: int) -> list[Unit]:
    """All units of an epoch, in the seeded shuffled order; unit j goes to slot j % slots."""
    order = list(shards)
    np.random.default_rng([seed, epoch]).shuffle(order)
    stride = max(1, math.ceil(slots / max(1, len(order))))
    return [Unit(shard, part, stride) for shard in order for part in range(stride)]


def slot_units(units: Sequence[Unit], slot: int, slots: int) -> list[Unit]:
    """The units one slot reads."""
    return list(units[slot::slots])


def _dist_info(world_size: int | None, rank: int | None) -> tuple[int, int]:
    if world_size is not None and rank is not None:
        return world_size, rank
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
    except ImportError:
        pass
    return int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))


@dataclass(frozen=True)
class StreamConfig:
    """What one epoch of one slot reads and how."""

    shards: tuple[str, ...]
    transform: Any = TrainTransform()
    caption_types: tuple[str, ...] | None = None
    shuffle_buffer: int = 512
    seed: int = 0
    on_corrupt: str = "raise"  # raise | skip
    retries: int = 3

    def __post_init__(self) -> None:
        if self.on_corrupt not in ("raise", "skip"):
            raise UsageError(f"on_corrupt must be 'raise' or 'skip', not {self.on_corrupt!r}")


def _corrupt(cfg: StreamConfig, stats: Counter, code: str, where: str) -> None:
    if cfg.on_corrupt == "raise":
        raise CorruptSampleError(f"{where}: {code} (use on_corrupt='skip' to skip and count such samples)")
    stats[f"skipped:{code}"] += 1


def _transient(problem: Problem) -> bool:
    return problem.code == "truncated-tar" and problem.message.startswith("cannot read shard") and "://" in problem.shard


def _entries(unit: Unit) -> Iterator[Any]:
    """`iter_entries(unit.shard, images=True)`, but a clean local shard's metadata comes from the fast scan
    (`shards.fastscan.samples_local`: the same samples) and only this unit's images are read, by offset."""
    import dataclasses

    from gpic_lab.shards.fastscan import samples_local
    from gpic_lab.shards.reader import is_url

    fast = None if is_url(unit.shard) else samples_local(unit.shard)
    if fast is None:
        yield from iter_entries(unit.shard, images=True)
        return
    fd = os.open(unit.shard, os.O_RDONLY)
    try:
        for i, sample in enumerate(fast):
            if i % unit.stride == unit.part:
                data = os.pread(fd, sample.image_size, sample.image_offset)
                if len(data) != sample.image_size:  # the shard shrank since the scan
                    yield Problem(unit.shard, f"{sample.key}.{sample.image_ext}", "truncated-tar",
                                  f"image member cut short ({len(data)} of {sample.image_size} bytes)", sample.key)
                    return
                sample = dataclasses.replace(sample, image=data)
            yield sample
    finally:
        os.close(fd)


def _iter_unit(unit: Unit, cfg: StreamConfig, stats: Counter) -> Iterator[Any]:
    """The samples of one unit, retrying transient read errors from the shard start (skipping what was done)."""
    done = 0
    for attempt in range(cfg.retries + 1):
        ordinal, mine, failed = 0, 0, False
        for entry in _entries(unit):
            if isinstance(entry, Problem):
                if _transient(entry) and attempt < cfg.retries:
                    failed = True
                    break
                if unit.part == 0:  # a shard-level problem is counted once, not once per unit
                    _corrupt(cfg, stats, entry.code, entry.line())
                continue
            ordinal += 1
            if (ordinal - 1) % unit.stride != unit.part:
                continue
            mine += 1
            if mine <= done:
                continue
            done = mine
            if cfg.caption_types and entry.meta.get("caption_type") not in cfg.caption_types:
                stats["filtered:caption_type"] += 1
                continue
            yield entry
        if not failed:
            return
        stats["retried:read-error"] += 1
        time.sleep(min(2.0**attempt * 0.5, 10.0))


def _shuffled(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """A bounded shuffle buffer: memory holds at most `size` samples."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(len(buffer)))
        buffer[j], item = item, buffer[j]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class SampleRngs:
    """The generator a slot's transform gets for its sample ``index``, seeded by (seed, epoch, slot, index) alone
    (resume-safe): Philox keyed by (seed, epoch, slot) with ``index`` as the high word of its counter, so each
    sample draws from its own block range. Resetting the counter costs ~4 µs per sample, building
    ``default_rng([seed, epoch, slot, index])`` ~30-50 µs (2-3 % of a worker's time per image). The generator is
    the same object for every sample: it is valid during the transform call only."""

    def __init__(self, seed: int, epoch: int, slot: int) -> None:
        key = np.random.SeedSequence([seed, epoch, slot, 2]).generate_state(2, np.uint64)
        self._bits = np.random.Philox(key=key)
        self._generator = np.random.Generator(self._bits)
        self._state = self._bits.state

    def __call__(self, index: int) -> np.random.Generator:
        self._state["state"]["counter"] = np.array([0, index, 0, 0], dtype=np.uint64)
        self._state["buffer_pos"] = 4  # nothing buffered: the next draw starts from the counter
        self._state["has_uint32"] = 0
        self._bits.state = self._state
        return self._generator


def iter_slot(cfg: StreamConfig, epoch: int, slot: int, slots: int, skip: int = 0) -> Iterator[dict[str, Any]]:
    """Decoded samples of one slot for one epoch, skipping its first `skip` outputs (resume), then a final
    {"__stats__": {...}, "slot": slot} record with counts of skipped / filtered samples by reason."""
    stats: Counter = Counter()
    units = slot_units(plan_units(cfg.shards, slots, epoch, cfg.seed), slot, slots)
    raw = (s for unit in units for s in _iter_unit(unit, cfg, stats))
    stream = _shuffled(raw, max(1, cfg.shuffle_buffer), np.random.default_rng([cfg.seed, epoch, slot, 1]))
    from PIL.Image import DecompressionBombError

    rngs = SampleRngs(cfg.seed, epoch, slot)
    for index, sample in enumerate(stream):
        if index < skip:
            continue
        try:
            image = cfg.transform(sample.image, rngs(index))
        except DecompressionBombError as exc:  # not an OSError: it would escape on_corrupt="skip"
            _corrupt(cfg, stats, "too-many-pixels", f"{sample.shard}:{sample.key}.{sample.image_ext} ({exc})")
            continue
        except (OSError, ValueError, SyntaxError) as exc:
            _corrupt(cfg, stats, "image-decode", f"{sample.shard}:{sample.key}.{sample.image_ext} ({exc})")
            continue
        yield {"image": image, "caption": sample.meta.get("caption", ""), "caption_type": sample.meta.get("caption_type", ""),
               "key": sample.key, "slot": slot, "index": index, "member": f"{sample.shard}:{sample.key}.{sample.image_ext}"}
    if stats:
        print(f"gpic-lab loader: slot {slot} epoch {epoch}: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())),
              file=sys.stderr)
    yield {"__stats__": dict(stats), "slot": slot}


def stream_config(paths: Sequence[str], tier: str | None = None, manifest: str | os.PathLike[str] | None = None,
                  **kwargs: Any) -> StreamConfig:
    """A StreamConfig over the shards of `paths` (directories expand), restricted to a tier (taken from the pack
    manifest or the records' ``split`` field)."""
    shards = tier_shards(list_shards(paths), tier, manifest)
    if not shards:
        raise UsageError(f"no shards selected (tier={tier!r}) from {list(paths)}")
    return StreamConfig(tuple(shards), **kwargs)
