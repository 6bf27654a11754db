"""Training batches from GPIC's loader in an order a resumed run reproduces exactly.

The loader (`gpic_lab.loader.torch_loader`) already guarantees exactly-once delivery across ranks and DataLoader workers
and a resumable position per slot (rank x worker). What it does not fix is the order in which the DataLoader
interleaves its workers' batches: a restarted DataLoader always begins with worker 0. `OrderedBatches` consumes the
batches of this rank's slots in a canonical order instead -- next comes the active slot that has delivered the
fewest batches (lowest slot first on ties) -- which is the DataLoader's own round-robin for a fresh run and is
recomputed from the saved per-slot batch counts on resume. Batches that arrive early wait in a small buffer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from gpic_lab.errors import UsageError

log = logging.getLogger("gpic_lab.baseline")
NOMINAL_SHARD_SAMPLES = 12_500  # GPIC: ≈12,500 samples per train shard


def _slot_of(batch: dict[str, Any]) -> int:
    if len(batch["key"]):
        return int(batch["slot"][0])
    return int(batch["slots_finished"][0])


class OrderedBatches:
    """This rank's training batches, one epoch, in the canonical slot order (see the module doc).

    Args:
        shards: shard files/dirs/URLs; tier: nano | lite | full | None.
        rank, world: this process and the number of ranks; workers: DataLoader workers per rank (>= 1 slot each).
        batch: samples per batch (the per-rank batch); seed: shard and sample shuffling seed.
        state: a `state_dict()` of a previous run to resume from (all ranks' slots), else start `epoch`.
        transform: per-sample transform (default `augment.TrainTransform()`: a random square crop of 0.8-1.0 of the
            shorter side, resized to 256, no flip; GPIC says "crop scale in [0.8, 1.0] of the original image":
            side fraction rather than area, and no flip, are OUR ASSUMPTION).
        pin_memory: pin batches (default: when CUDA is available).
    """

    def __init__(self, shards: Sequence[str], tier: str | None, rank: int, world: int, workers: int, batch: int,
                 seed: int = 0, epoch: int = 0, state: dict[str, Any] | None = None, transform: Any = None,
                 shuffle_buffer: int = 512, pin_memory: bool | None = None) -> None:
        from gpic_lab.loader.augment import TrainTransform
        from gpic_lab.loader.torch_loader import GpicIterableDataset, ResumeTracker, make_loader

        self.workers = max(1, workers)
        self.dataset = GpicIterableDataset(list(shards), tier=tier, world_size=world, rank=rank, seed=seed,
                                           shuffle_buffer=shuffle_buffer, transform=transform or TrainTransform())
        self.counts: dict[int, int] = {}
        if state is not None:
            if int(state["slots"]) != world * self.workers:
                raise UsageError(f"resume: the run used {state['slots']} loader slots (ranks x workers), "
                                 f"now {world} x {self.workers}")
            self.dataset.load_state_dict(state)
            self.counts = {int(k): int(v) for k, v in state.get("batches", {}).items()}
        else:
            self.dataset.set_epoch(epoch)
        self.epoch = self.dataset.epoch
        self.slots = [rank * self.workers + w for w in range(self.workers)]
        self.loader = make_loader(self.dataset, batch_size=batch, num_workers=workers, pin_memory=pin_memory,
                                  prefetch_factor=4)
        self.tracker = ResumeTracker(self.dataset, workers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pending: dict[int, deque] = {s: deque() for s in self.slots}
        finished: set[int] = set()
        source = iter(self.loader)
        while True:
            active = [s for s in self.slots if pending[s] or s not in finished]
            if not active:
                return
            slot = min(active, key=lambda s: (self.counts.get(s, 0), s))
            while not pending[slot] and slot not in finished:
                try:
                    batch = next(source)
                except StopIteration:
                    finished.update(self.slots)
                    break
                where = _slot_of(batch)
                finished.update(batch["slots_finished"])
                if len(batch["key"]):
                    pending[where].append(batch)
                else:
                    self.tracker.update(batch)  # only an end-of-slot marker: record its stats
            if pending[slot]:
                yield pending[slot].popleft()

    def commit(self, batch: dict[str, Any]) -> None:
        """Record a batch as consumed by a finished training step (its position enters the resume state)."""
        self.tracker.update(batch)
        slot = _slot_of(batch)
        self.counts[slot] = self.counts.get(slot, 0) + 1

    def state_dict(self) -> dict[str, Any]:
        """This rank's position: consumed samples and batches per slot."""
        return {**self.tracker.state_dict(), "batches": dict(self.counts)}


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One resume state from every rank's `OrderedBatches.state_dict()` (slots are global indices)."""
    merged: dict[str, Any] = {"epoch": states[0]["epoch"], "slots": states[0]["slots"], "consumed": {},
                              "batches": {}}
    for s in states:
        if s["epoch"] != merged["epoch"] or s["slots"] != merged["slots"]:
            raise ValueError("ranks disagree on the loader epoch or slot count")
        merged["consumed"].update(s["consumed"])
        merged["batches"].update(s["batches"])
    return merged


def estimate_epoch_samples(shards: Sequence[str], tier: str | None) -> int:
    """Samples in one epoch: the first shard's count (read from its headers) times the shard count; remote shards
    count as GPIC's nominal 12,500. OUR ASSUMPTION: shards are of equal size (GPIC's are ≈12,500 each). Used for
    the warmup length and the ETA only; the epoch itself ends when the data does."""
    from gpic_lab.loader.stream import tier_shards
    from gpic_lab.shards.reader import is_url, iter_samples, list_shards

    selected = tier_shards(list_shards(shards), tier)
    if not selected:
        raise UsageError(f"no shards selected (tier={tier!r}) from {list(shards)}")
    if is_url(selected[0]):
        return NOMINAL_SHARD_SAMPLES * len(selected)
    first = sum(1 for _ in iter_samples([selected[0]], images=False))
    return first * len(selected)
