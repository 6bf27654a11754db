"""Arguments several verbs share, spelled once: ``--progress``, the worker slice of the shard list
(``--shard-range A:B`` or ``--rank R --world-size W``), and old spellings kept as hidden aliases."""

from __future__ import annotations

import argparse
from typing import Any

from gpic_lab.progress import MODES


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--progress auto|on|off`` (and the old ``--no-progress`` = ``--progress off``)."""
    p.add_argument("--progress", choices=MODES, default="auto",
                   help="progress bar with rate and ETA on stderr; auto: on when stderr is a terminal or under "
                        "`gpic-lab run`")
    p.add_argument("--no-progress", dest="progress", action="store_const", const="off", help=argparse.SUPPRESS)


def add_shard_slice(p: argparse.ArgumentParser, what: str = "shards") -> None:
    """``--shard-range A:B`` / ``--rank R --world-size W``: one parallel worker's part of the sorted shard list."""
    g = p.add_argument_group("parallel workers (the parts of all workers cover every shard once)")
    g.add_argument("--shard-range", default=None, metavar="A:B",
                   help=f"only {what} A..B-1 of the sorted shard list (what `gpic-lab run --fan-out` passes)")
    g.add_argument("--rank", type=int, default=None, metavar="R",
                   help="this worker's number, 0..W-1: its contiguous block of the sorted shard list")
    g.add_argument("--world-size", type=int, default=None, metavar="W", help="number of workers (with --rank)")


def is_sliced(args: argparse.Namespace) -> bool:
    """Was a worker slice asked for?"""
    return bool(args.shard_range) or args.rank is not None or args.world_size is not None


def sliced_shards(args: argparse.Namespace, paths: list[str]) -> list[str]:
    """The shards this worker handles: all of ``paths`` expanded, or its slice of them (sorted)."""
    from gpic_lab.shards.reader import list_shards
    from gpic_lab.shards.sources import select

    shards = list_shards(paths)
    return select(shards, args.shard_range, args.rank, args.world_size) if is_sliced(args) else shards


def slice_note(args: argparse.Namespace, picked: list[str], total: list[str] | None = None) -> str:
    """One line for stderr naming the slice, e.g. ``rank 1 of 8: 1000 shard(s)``."""
    where = f"shard range {args.shard_range}" if args.shard_range else f"rank {args.rank} of {args.world_size}"
    return f"{where}: {len(picked)} shard(s)" + (f" of {len(total)}" if total is not None else "")


def alias(p: argparse.ArgumentParser, old: str, dest: str, **kwargs: Any) -> None:
    """A hidden old spelling of an option that now has another name (same destination)."""
    p.add_argument(old, dest=dest, help=argparse.SUPPRESS, **kwargs)
