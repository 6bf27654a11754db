"""Local worker pools kept between calls: the second `pack` of a notebook session (or of a benchmark's rounds)
finds its workers running, warm, instead of forking and warming new ones.

A caller takes a pool with `take_pool(workers)` and hands it back with `give_back_pool` once every task it sent has
finished; a pool handed back waits idle for the next taker of the same size. While one caller holds a pool, a second
caller gets a pool of its own, so two callers never share (or tear down) each other's workers. A pool whose run
failed or was interrupted is not handed back but shut down (``pool.shutdown(cancel_futures=True)``): its workers may
be gone or mid-task. An idle pool shuts itself down after `IDLE_S` seconds; `close_idle_pools` shuts every idle pool
down now. Workers still end with this process (`backends.die_with_parent`).

Kept workers keep the working directory they started with (whatever a task names must be an absolute path) and the
code they imported then (after editing gpic_lab in a running notebook, `close_idle_pools`).
"""

from __future__ import annotations

import threading
from typing import Any

# OUR ASSUMPTION: how long idle workers wait for the next call before they exit, as joblib/loky's reusable
# executor does by default (300 s): long enough for the next cell of a notebook, short enough that forgotten
# workers (~30-40 MB each) do not stay for the whole session.
IDLE_S = 300.0

_lock = threading.Lock()
_idle: dict[int, list[tuple[Any, threading.Timer]]] = {}


def take_pool(workers: int) -> tuple[Any, bool]:
    """An idle kept pool of ``workers`` processes, or a new one (`backends.local_pool`); and whether it is new (its
    workers have not started yet)."""
    from gpic_lab.engine.backends import local_pool

    while True:
        with _lock:
            waiting = _idle.get(workers) or []
            if not waiting:
                break
            pool, timer = waiting.pop()
        timer.cancel()
        if not getattr(pool, "_broken", False):  # a worker died while it waited (killed, out of memory)
            return pool, False
        pool.shutdown(wait=False)
    return local_pool(workers), True


def give_back_pool(pool: Any, workers: int) -> None:
    """Keep ``pool`` (from `take_pool`, every task finished) for the next `take_pool(workers)`; it shuts down after
    `IDLE_S` seconds nobody takes it."""
    timer = threading.Timer(IDLE_S, _expire, args=(pool, workers))
    timer.daemon = True
    timer.name = "gpic-lab-idle-pool"
    with _lock:
        _idle.setdefault(workers, []).append((pool, timer))
    timer.start()


def idle_pools() -> int:
    """How many pools wait idle to be taken."""
    with _lock:
        return sum(len(waiting) for waiting in _idle.values())


def close_idle_pools() -> None:
    """Shut every idle pool down now (their workers exit)."""
    with _lock:
        waiting = [entry for entries in _idle.values() for entry in entries]
        _idle.clear()
    for pool, timer in waiting:
        timer.cancel()
        pool.shutdown(wait=True)


def _expire(pool: Any, workers: int) -> None:
    with _lock:
        waiting = _idle.get(workers, [])
        mine = [entry for entry in waiting if entry[0] is pool]
        for entry in mine:
            waiting.remove(entry)
    if mine:
        pool.shutdown(wait=True)
