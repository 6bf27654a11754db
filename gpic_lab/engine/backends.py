"""Where per-shard work runs: in this process, a local process pool, or a Dask distributed cluster.

Every engine maps one picklable, module-level function over a list of items and yields ``(item, result)`` as
tasks finish, so the caller can record progress (and completion markers) shard by shard. The same function
runs unchanged on every engine.

- ``local``: ``concurrent.futures.ProcessPoolExecutor`` (forkserver start method, so a parent holding torch or
  CUDA state never forks it); one worker runs the tasks inline in this process.
- ``dask``: ``dask.distributed``. Without ``scheduler`` a ``LocalCluster`` bound to 127.0.0.1 (no dashboard,
  `LIGHT_DASK` settings: `local_cluster`) is started and closed; with ``scheduler="tcp://HOST:PORT"`` the tasks go
  to that cluster (a client is connected for the call and closed after it); with a connected ``distributed.Client``
  (a notebook's) they go through it and it stays open. GPU stages submit with ``resources={"GPU": 1}``, so a worker
  started with ``--resources GPU=1`` runs one at a time.

A worker that dies takes only its running task with it: finished tasks were already yielded. The local pool
cannot recover a dead process and raises ``GpicError`` (rerun to resume); Dask reschedules the lost task on
another worker (up to ``distributed.scheduler.allowed-failures`` times).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from gpic_lab.errors import GpicError, UsageError

ENGINES = ("local", "dask")
_NOTHING = object()
CONNECT_TIMEOUT = "30s"  # how long to wait for a remote Dask scheduler
# OUR ASSUMPTION: the Dask settings of the LocalClusters we start (`local_cluster`). They have no dashboard, so nobody
# reads the statistical profiler's samples (every worker samples its threads every 10 ms), and an event-loop tick
# every second instead of every 20 ms still catches a blocked loop (Dask warns after 3 s). Idle, a 2-worker
# LocalCluster then cost 48 instead of 160 ms of CPU per second (caller 26 ms, each worker 11 ms), and a 2-worker
# `--quick` pack's efficiency rose from 0.67 to 0.74 (median of 24 alternated rounds; 2 vCPUs, 2026-12-03).
LIGHT_DASK = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}


def default_workers(n_items: int) -> int:
    """One worker per core, never more than there are items."""
    return max(1, min(os.cpu_count() or 1, n_items))


def local_pool(workers: int) -> Any:
    """A local process pool as ``map_tasks`` makes one (forkserver; workers die with this process). Pass it to
    ``map_tasks(..., pool=...)`` to start the workers early (e.g. while the parent plans) or reuse them; the caller
    shuts it down."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def map_tasks(fn: Callable[[Any], Any], items: Iterable[Any], engine: str = "local", scheduler: Any = None,
              workers: int | None = None, gpu: bool = False, label: Callable[[Any], str] = str,
              pool: Any = None) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, fn(item))`` for every item, in completion order.

    Args:
        fn: a module-level function (it is pickled by reference).
        items: the task arguments, one task each; an iterator given to a local pool or to Dask is submitted as it
            yields (to Dask in growing batches), so the first tasks run while the caller still builds the last.
        engine: ``local`` or ``dask``.
        scheduler: Dask scheduler address (``tcp://HOST:PORT``) or a connected ``distributed.Client`` (left open);
            ``None`` starts a LocalCluster on 127.0.0.1.
        workers: processes (local) or LocalCluster workers (dask); default one per core.
        gpu: submit with ``resources={"GPU": 1}`` on Dask (a LocalCluster then gives each worker one GPU slot).
        label: names an item in error messages (e.g. the shard path).
        pool: a pool from ``local_pool`` to run on (local engine, more than one worker), or a `DaskConnection`
            (dask engine with a scheduler); kept open afterwards.
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    if not isinstance(items, Sequence) and not (engine == "dask" or (workers and workers > 1)):
        items = list(items)  # one local worker takes them in turn; a pool or Dask as the iterable yields them
    if isinstance(items, Sequence):
        if not items:
            return iter(())
    else:
        first = next(iter(items), _NOTHING)
        if first is _NOTHING:
            return iter(())
        items = itertools.chain((first,), items)
    n = workers or default_workers(len(items) if isinstance(items, Sequence) else os.cpu_count() or 1)
    if n < 1:
        raise UsageError(f"workers must be >= 1, got {n}")
    if engine == "local":
        return _local(fn, items, n, label, pool)
    return _dask(fn, items, scheduler, n, gpu, label, pool)


def _local(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, label: Callable[[Any], str],
           given: Any = None) -> Iterator[tuple[Any, Any]]:
    if workers == 1:
        for item in items:
            yield item, fn(item)
        return
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = given if given is not None else local_pool(workers)
    completed = False
    try:
        pending = {pool.submit(fn, item): item for item in items}  # an iterator: each item as it is made
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                item = pending.pop(future)
                try:
                    yield item, future.result()
                except BrokenProcessPool as exc:
                    raise GpicError(f"{label(item)}: a worker process died ({exc}); finished shards are kept, "
                                    "rerun the same command to resume") from None
        completed = True
    finally:
        if not completed:  # an error, Ctrl-C or SIGTERM: stop the workers now instead of letting them finish
            _terminate(pool)
        if given is None or not completed:
            pool.shutdown(wait=True, cancel_futures=True)


def die_with_parent(main_pid: int) -> None:
    """Worker initializer: a daemon thread ends this worker (``os._exit``) as soon as the main process is gone, so
    a killed ``gpic-lab stage`` leaves no worker finishing shards into its --out. (The kernel's parent-death signal
    does not help here: a forkserver worker's parent is the forkserver, which outlives the main process while any
    worker holds its pipe; once the workers are gone the forkserver and the resource tracker see EOF and exit.)"""
    import threading

    threading.Thread(target=_watch, args=(main_pid,), name="gpic-lab-parent-watch", daemon=True).start()


def _watch(main_pid: int) -> None:
    import select
    import time

    try:
        fd = os.pidfd_open(main_pid)  # Linux >= 5.3: readable once the process has exited
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(1)
    while True:  # elsewhere: poll
        time.sleep(0.5)
        try:
            os.kill(main_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


def _terminate(pool: Any) -> None:
    """Kill a ProcessPoolExecutor's workers (``terminate_workers`` arrives only in Python 3.14; this reads the
    private process table, the same one it uses)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.terminate()
    for process in list(getattr(pool, "_processes", {}).values()):
        process.join(timeout=5)


def local_cluster(workers: int, gpu: bool = False) -> Any:
    """A Dask ``LocalCluster`` as the engine starts one: ``workers`` single-threaded worker processes on 127.0.0.1, no
    dashboard, `LIGHT_DASK` settings (the workers keep them when the nanny restarts one); with ``gpu`` each worker
    offers one ``GPU`` resource. A notebook that keeps a standing cluster for several stages can start it here and
    pass ``distributed.Client(cluster)`` as ``scheduler``."""
    import copy

    import dask
    from distributed import LocalCluster

    with dask.config.set(LIGHT_DASK):
        settings = copy.deepcopy(dask.config.config)  # a nanny keeps its own: `set` undoes its changes in place
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, resources={"GPU": 1} if gpu else None, config=settings)


def dask_client(scheduler: Any) -> Any:
    """A ``distributed.Client`` of ``scheduler`` (an address or a cluster); GpicError naming it when unreachable."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise GpicError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None


class DaskConnection:
    """A client of a running Dask scheduler, connecting in a background thread from the moment it is made, so a
    caller can plan meanwhile and pass it to `map_tasks` (``pool=``); ``shutdown`` closes it (the name and
    signature of ``ProcessPoolExecutor.shutdown``, so callers treat both alike). Connecting and closing cost
    ~5 ms and ~13 ms per call on 2 vCPUs (2026-12-02)."""

    def __init__(self, scheduler: Any) -> None:
        import threading

        self._result: dict[str, Any] = {}
        self._owned = isinstance(scheduler, str)  # a Client given by the caller is theirs: used, never closed
        self._thread = threading.Thread(target=self._connect, args=(scheduler,), name="gpic-lab-dask-connect",
                                        daemon=True)
        if self._owned:
            self._thread.start()
        else:
            self._result["client"] = scheduler

    def _connect(self, scheduler: str) -> None:
        try:
            self._result["client"] = dask_client(scheduler)
        except BaseException as exc:  # handed to the caller by `client`
            self._result["error"] = exc

    def client(self) -> Any:
        """The connected client (waits for the connection; raises what connecting raised)."""
        if self._owned:
            self._thread.join()
        if "error" in self._result:
            raise self._result["error"]
        return self._result["client"]

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if not self._owned:
            return
        self._thread.join()
        client = self._result.pop("client", None)
        if client is not None:
            client.close()


def _dask(fn: Callable[[Any], Any], items: Iterable[Any], scheduler: Any, workers: int, gpu: bool,
          label: Callable[[Any], str], connection: DaskConnection | None = None) -> Iterator[tuple[Any, Any]]:
    from distributed import as_completed

    cluster = None
    if connection is None and scheduler is not None and not isinstance(scheduler, str):
        connection = DaskConnection(scheduler)  # the caller's Client
    if connection is not None:
        client = connection.client()
    else:
        if scheduler is None:
            cluster = local_cluster(workers, gpu)
        try:
            client = dask_client(cluster if cluster is not None else scheduler)
        except GpicError:
            if cluster is not None:
                cluster.close()
            raise
    try:
        if gpu and not _gpu_workers(client):
            raise GpicError(f"no worker of the Dask cluster {scheduler} offers a GPU resource (the tasks would wait "
                            "forever); start GPU workers with: dask worker ADDR --nworkers 1 --resources GPU=1")
        done = as_completed(with_results=True, raise_errors=False)  # results fetched as tasks finish
        item_of = _submit(client, fn, items, gpu, done)
        for future, result in done:  # each result is released once gathered: a dead worker cannot recompute it
            item = item_of[future.key]
            if future.status == "error":  # `result` is then an exc_info tuple
                exc = future.exception()
                raise GpicError(f"{label(item)}: {type(exc).__name__}: {exc}") from None
            future.release()
            yield item, result.value
    finally:
        if connection is None:
            client.close()
        if cluster is not None:
            cluster.close()


def _submit(client: Any, fn: Callable[[Any], Any], items: Iterable[Any], gpu: bool, done: Any) -> dict[str, Any]:
    """Submit one task per item, each future added to the ``as_completed`` ``done``; returns the item of each task
    key. A sequence goes in one graph update; an iterator as it yields, in batches of 1, 2, 4 ... 64 items (one
    update each): the first task starts as soon as its item is made instead of after the last (pack builds its jobs at
    ~2.5 µs per record, ~4 minutes for GPIC's 100 M), without a message to the scheduler per task (~1.3 ms of this
    process's CPU each; 2 vCPUs, 2026-12-03)."""
    chunks = [list(items)] if isinstance(items, Sequence) else _doubling(iter(items), 64)
    item_of: dict[str, Any] = {}
    for chunk in chunks:
        futures = client.map(run_boxed, [Boxed((fn, item)) for item in chunk], pure=False,
                             resources={"GPU": 1} if gpu else None)
        item_of.update((f.key, item) for f, item in zip(futures, chunk, strict=True))
        done.update(futures)
    return item_of


def _doubling(items: Iterator[Any], most: int) -> Iterator[list[Any]]:
    """Lists of 1, 2, 4 ... up to ``most`` consecutive items of ``items``."""
    size = 1
    while chunk := list(itertools.islice(items, size)):
        yield chunk
        size = min(2 * size, most)


class Boxed:
    """A task's argument or result as Dask sees it: one object, pickled whole. Dask walks every list, dict and tuple
    of a task's arguments looking for futures and serialises a result's collections element by element; for tasks
    carrying thousands of records (a pack shard's) that cost more than the work (10 tasks of 50,000-element lists
    on a 2-worker LocalCluster: 0.42 s bare, 0.10 s boxed; 4 shards' scan columns as results: 0.47 s bare, 0.07 s
    boxed; 2 vCPUs, 2026-12-02)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def run_boxed(box: Boxed) -> Boxed:
    """Run ``fn(item)`` for ``box.value == (fn, item)`` on a Dask worker; the result goes back boxed."""
    fn, item = box.value
    return Boxed(fn(item))


def _gpu_workers(client: Any) -> int:
    """How many connected workers offer at least one ``GPU`` resource."""
    workers = client.scheduler_info().get("workers", {})
    return sum(1 for w in workers.values() if w.get("resources", {}).get("GPU", 0) >= 1)
