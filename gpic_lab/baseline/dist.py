"""torch.distributed for the baseline: set up from torchrun's environment (NCCL on CUDA, gloo on CPU), small
collectives that are no-ops in a single process."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    control: Any = None  # a gloo group for small CPU collectives when the main backend is NCCL

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1 and tdist.is_initialized()


def setup(device: str | None = None, timeout_min: int = 60) -> Dist:
    """Join the job torchrun started (WORLD_SIZE > 1), else a single process. CUDA ranks use cuda:LOCAL_RANK
    and NCCL; CPU ranks use gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda"):
        dev = torch.device("cuda", local if world > 1 else (torch.device(want).index or 0))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    control = None
    if world > 1:
        if not tdist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            tdist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_min),
                                     **({"device_id": dev} if dev.type == "cuda" else {}))
        if dev.type == "cuda":
            control = tdist.new_group(backend="gloo")
    return Dist(rank, world, local, dev, control)


def teardown(d: Dist) -> None:
    """Leave the process group (if we joined one)."""
    if d.active:
        tdist.barrier()
        tdist.destroy_process_group()


def all_sum(d: Dist, values: list[float], control: bool = False) -> list[float]:
    """Element-wise sum of a few numbers over ranks (float64). `control=True` sums CPU numbers through the gloo
    group (no GPU synchronisation: the step loop's per-step bookkeeping)."""
    cpu = control and d.control is not None
    t = torch.tensor(values, dtype=torch.float64, device="cpu" if cpu else d.device)
    if d.active:
        tdist.all_reduce(t, group=d.control if cpu else None)
    return t.tolist()


def all_max(d: Dist, value: float) -> float:
    """Maximum of one number over ranks."""
    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    if d.active:
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return float(t.item())


def gather_objects(d: Dist, obj: Any) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not d.active:
        return [obj]
    out: list[Any] = [None] * d.world
    tdist.all_gather_object(out, obj)
    return out


def broadcast_object(d: Dist, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not d.active:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    if d.active:
        tdist.barrier()
