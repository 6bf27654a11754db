"""`gpic-lab bench pack [PATH...] [--samples N] [--shards N] [--workers 1,2] [--no-dask]`: packing vs a plain
tarfile copy per core, and packing in parallel over output shards, same run.

Ours: ``gpic_lab.pack.packer.pack`` (plan from JSON headers only, stratified splits, balanced shards, image bytes by
pread, deterministic tars hashed as they are written, fsync'd atomic renames, manifest, datasheet, dataset card).
Baseline: Python's ``tarfile`` reading every member of the same source shards and writing them to as many output
tars (no plan, no manifest, no hashes, no fsync): what a competent user writes to re-shard a tar set by hand.
Both sides run in this process, interleaved, best of ``--repeat``; the headline ``ratio`` is samples per
CPU-second of ours over the baseline's (per core: robust to other jobs on a shared machine), wall-clock rates are
reported beside it. Then ours with N workers (a local process pool, which pack keeps between calls, and a Dask
LocalCluster as `backends.local_cluster` starts one, with a client of it, started once beforehand, as a notebook
uses a standing cluster: pack is given the client; for both, the untimed first call that starts the workers is
reported as ``first_call_wall_s``) in alternation with ours on one process: wall-clock speedup, its efficiency
(speedup / N, goal >= 0.8), the speedup two processes of pure CPU work got in the same rounds (``cpu_burn_speedup``,
the machine's ceiling at that moment) and the efficiency against it (``efficiency_vs_cpu_burn`` = speedup /
cpu_burn_speedup), and a projection to 100M samples.

Correctness (a failure exits 1 with ratio null): every source sample is in ours' output with the same image bytes
and in the copy; the manifest verifies; every parallel run's shards and manifest are byte-identical to one
process's.

Default corpus: GPIC-sized records with ~96 KB JPEG-headed random image members (pack never decodes images), on
tmpfs when it has room (page cache warm by construction; ``--dir`` to choose).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GOAL_PER_CORE = 0.8  # ours >= 0.8x a plain tarfile copy per core
GOAL_EFFICIENCY = 0.8  # N processes >= 0.8 * N x one process's rate
SAMPLES_100M = 100_000_000
# OUR ASSUMPTION (measurement): best of 5 alternated rounds per side. On a shared 2-vCPU machine other tenants take
# the second core for stretches (pure CPU work on 2 processes scaled 1.06-2.15x between rounds, 2026-12-02); with 3
# rounds a run often saw no round with both cores free. Every round is in the JSON (``rounds``).
ROUNDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="source shards (default: generated GPIC-sized shards)")
    parser.add_argument("--samples", type=int, default=None, help="generated samples (default 12000; --quick 4000)")
    parser.add_argument("--image-kb", type=int, default=96, help="generated image member size in KB (default 96)")
    parser.add_argument("--shards", type=int, default=8, help="train shards to write (default 8)")
    parser.add_argument("--repeat", type=int, default=None, help="best of N timings per side (default 3; --quick 2)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternated rounds of one process vs N, best "
                                                                    f"of each side (default {ROUNDS})")
    parser.add_argument("--workers", default="2", help="comma-separated parallel worker counts (default 2)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster measurement")
    parser.add_argument("--dir", default=None, help="where to put sources and outputs (default: /dev/shm when it has "
                                                    "room, else a temp dir)")


def tarfile_copy(shards: list[str], out: Path, n_out: int) -> int:
    """Copy every member of ``shards`` into ``n_out`` tars with plain tarfile, pairs kept together; returns the
    number of samples (JSON members) copied."""
    out.mkdir(parents=True, exist_ok=True)
    writers = [tarfile.open(out / f"copy_{i:05d}.tar", "w") for i in range(n_out)]
    count = 0
    try:
        for shard in shards:
            with tarfile.open(shard) as src:
                for member in src:
                    if not member.isfile():
                        continue
                    data = src.extractfile(member)
                    key = member.name.rsplit(".", 1)[0]
                    writers[hash(key) % n_out].addfile(member, data)
                    count += member.name.endswith(".json")
    finally:
        for w in writers:
            w.close()
    return count


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def contents(paths: list[str]) -> dict[str, str]:
    """key -> sha256 of the image bytes, over every sample of ``paths``."""
    from gpic_lab.shards.reader import iter_samples

    return {s.key: hashlib.sha256(s.image or b"").hexdigest() for s in iter_samples(paths)}


def output_digest(out: Path) -> str:
    """sha256 over the manifest and every shard of a pack output (names and bytes)."""
    from gpic_lab.pack.manifest import sha256_file

    h = hashlib.sha256()
    for p in sorted([out / "manifest.json", *out.glob("*/*.tar")]):
        h.update(f"{p.relative_to(out)}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _check_output(source: dict[str, str], out: Path, copy_count: int) -> list[str]:
    from gpic_lab.pack.manifest import verify

    packed = contents([str(out)])
    problems = []
    missing, extra = source.keys() - packed.keys(), packed.keys() - source.keys()
    if missing or extra:
        problems.append(f"pack output lacks {len(missing)} source sample(s) and has {len(extra)} unknown one(s)")
    changed = sum(packed[k] != v for k, v in source.items() if k in packed)
    if changed:
        problems.append(f"{changed} image(s) differ between source and pack output")
    if copy_count != len(source):
        problems.append(f"the tarfile copy holds {copy_count} of {len(source)} samples")
    bad, _ = verify(out / "manifest.json")
    if bad:
        problems.append(f"manifest verify: {bad[0].line()}")
    return problems


def _sources(args: argparse.Namespace, root: Path) -> list[str]:
    from gpic_lab.benches.catalog import generate
    from gpic_lab.shards.reader import list_shards

    if args.paths:
        return list_shards(args.paths)
    n = args.samples or (4000 if args.quick else 12000)
    (root / "src").mkdir()
    return generate(root / "src", 4, max(1, n // 4), args.image_kb)


def burn(n: int) -> int:
    """Pure CPU work (no I/O, no memory traffic), to see how many cores this shared machine gives right now."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def fresh_write(mib: int) -> int:
    """Write ``mib`` MiB of freshly mapped memory, 64 MiB at a time (what writing new output files costs: the page
    cache takes fresh pages too)."""
    import mmap

    chunk = 64 << 20
    for _ in range(max(1, mib // 64)):
        with mmap.mmap(-1, chunk) as m:
            m.write(b"\1" * chunk)
    return mib


def machine_speedup(workers: int, fn: Any = burn, arg: int = 2_000_000) -> float:
    """Wall-clock speedup of `workers` local pool processes over one on ``fn(arg)`` tasks (start-up included, as for
    pack): with `burn`, the CPU the other tenants of a shared machine leave; with `fresh_write`, how far writing
    new memory scales here (a VM that hands out fresh pages slowly may serialise it); 1.0 for one worker."""
    from gpic_lab.engine.backends import map_tasks

    if workers <= 1:
        return 1.0
    items = [arg] * (2 * workers)
    one = _timed(lambda: list(map_tasks(fn, items, workers=1)))[0]
    many = _timed(lambda: list(map_tasks(fn, items, workers=workers)))[0]
    return one / many


def _parallel(shards: list[str], root: Path, args: argparse.Namespace, rounds: int,
              reference: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Wall-clock speedup of ours on N workers (local pool; Dask LocalCluster) over one process; byte identity.

    One process and N are timed in alternation, each writing over its own previous output, after one untimed call
    of each: both then meet the page cache in the same state (on this VM a pack writing into memory the guest has
    not used lately pays the host's page faults, ~3x the cost of a write, and would be charged to whichever side
    ran first), and the workers are running: the untimed first call starts the local pool, which pack keeps for
    the next call (`gpic_lab.engine.pools`), as a notebook's second pack finds it; its time is reported as
    ``first_call_wall_s``.
    Each round also measures what the machine gives two processes at that moment on pure CPU work, started the same
    way (``machine_speedup``). How far writing fresh memory scales is measured after the rounds, not between them:
    its ~1 GB of memory freed per measurement is handed back to the host by the VM's free page reporting, and the
    next pack's page cache would then pay the host's page faults for it."""
    from gpic_lab.engine.pools import close_idle_pools
    from gpic_lab.pack.packer import pack

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    one = functools.partial(pack, shards, root / "packed_one", args.shards, 0.01, 0.01, seed=0)
    one()
    for engine in ("local", "dask"):
        if engine == "dask" and (args.no_dask or not counts):
            continue
        with _engine(engine, max(counts, default=1)) as scheduler:  # Dask runs only while it is measured
            for n in counts:
                out = root / f"packed_{engine}_{n}"
                many = functools.partial(pack, shards, out, args.shards, 0.01, 0.01, seed=0, workers=n,
                                         engine=engine, scheduler=scheduler)
                first = _timed(many)[0]
                timed = []
                for _ in range(rounds):  # alternated, so a burst of other jobs hits both sides alike
                    timed.append({"one_s": _timed(one)[0], "many_s": _timed(many)[0],
                                  "cpu_burn_speedup": machine_speedup(n)})
                fresh = [machine_speedup(n, fresh_write, 128) for _ in range(2)]  # after the rounds: see _parallel
                same = output_digest(out) == reference
                if not same:
                    problems.append(f"{engine} with {n} workers wrote different shards or manifest than one process")
                rows.append(_parallel_row(engine, n, first, timed, same, max(fresh)))
                shutil.rmtree(out, ignore_errors=True)
            close_idle_pools()  # the kept local workers would idle beside the Dask rounds
    return rows, problems


@contextlib.contextmanager
def _engine(engine: str, workers: int) -> Iterator[Any]:
    """What pack's ``scheduler`` gets for ``engine``: None for the local pool; for Dask a client of a LocalCluster
    started here as `backends.local_cluster` starts one (127.0.0.1, no dashboard, profiler off), as a notebook keeps
    a standing cluster and its client (pack uses the client and leaves it open). The cluster lives only while Dask
    is measured: its idle scheduler, nannies and workers would otherwise take CPU from the local pool's rounds on a
    2-core machine."""
    if engine != "dask":
        yield None
        return
    from distributed import Client

    from gpic_lab.engine.backends import local_cluster

    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client


def _parallel_row(engine: str, n: int, first: float, timed: list[dict[str, float]], same: bool,
                  fresh: float) -> dict[str, Any]:
    """Best times of each side, the speedup, its efficiency (speedup / N, the goal) and its share of the best
    machine scaling seen in the same rounds (speedup / cpu_burn_speedup)."""
    one, many = min(t["one_s"] for t in timed), min(t["many_s"] for t in timed)
    speedup = one / many
    burn = max(t["cpu_burn_speedup"] for t in timed)
    row = {"engine": engine, "workers": n, "wall_s": round(many, 3), "one_process_wall_s": round(one, 3),
           "speedup": round(speedup, 3), "efficiency": round(speedup / n, 3), "byte_identical": same,
           "cpu_burn_speedup": round(burn, 3),
           "fresh_write_speedup": round(fresh, 3),
           "efficiency_vs_cpu_burn": round(speedup / burn, 3) if n > 1 else 1.0,
           "first_call_wall_s": round(first, 3), "rounds": [{k: round(v, 3) for k, v in t.items()} for t in timed]}
    print(f"  {engine} x{n}: {many:.3f} s vs one process {one:.3f} s, speedup {speedup:.2f} (efficiency "
          f"{speedup / n:.2f}; pure CPU scaled {burn:.2f}x in the same rounds: {row['efficiency_vs_cpu_burn']:.2f} of "
          "it)", file=sys.stderr)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpic_lab.benches.catalog import bench_dir
    from gpic_lab.benches.record import gate
    from gpic_lab.pack.packer import classify_inputs, make_plan, pack

    repeat = args.repeat or (2 if args.quick else 3)
    n_guess = (args.samples or (4000 if args.quick else 12000)) * (args.image_kb + 2) * 1024
    where, storage = bench_dir(args.dir, 4 * n_guess)
    with tempfile.TemporaryDirectory(prefix="gpic-bench-pack-", dir=where) as tmp:
        root = Path(tmp)
        shards = _sources(args, root)
        source = contents(shards)
        size = sum(Path(s).stat().st_size for s in shards)
        print(f"bench pack: {len(source)} samples, {size / 2**20:.1f} MiB in {len(shards)} shard(s), {storage}",
              file=sys.stderr)
        out, copy = root / "packed", root / "copy"
        copied = [0]

        def base() -> None:
            shutil.rmtree(copy, ignore_errors=True)
            copied[0] = tarfile_copy(shards, copy, args.shards + 2)

        def ours() -> None:
            pack(shards, out, args.shards, 0.01, 0.01, seed=0)

        ours()  # warm-up: imports and first-call set-up are not per-sample costs
        runs: dict[str, list[tuple[float, float]]] = {"base": [], "ours": []}
        for _ in range(repeat):  # interleaved, so a burst of other jobs hits both sides alike
            runs["base"].append(_timed(base))
            runs["ours"].append(_timed(ours))
        t_base, t_ours = (tuple(min(t[i] for t in runs[side]) for i in (0, 1)) for side in ("base", "ours"))
        t_plan = min(_timed(lambda: make_plan(classify_inputs(shards), args.shards, 0.01, 0.01, 0))[1]
                     for _ in range(repeat))
        problems = _check_output(source, out, copied[0])
        reference = output_digest(out)
        shutil.rmtree(copy, ignore_errors=True)
        parallel, more = _parallel(shards, root, args, max(1, args.rounds), reference)
    n = len(source)
    per_core, base_core = n / t_ours[1], n / t_base[1]
    ratio = per_core / base_core
    serial = min(1.0, t_plan / t_ours[1])
    local = [r for r in parallel if r["engine"] == "local"]
    efficiency_ok = all(r["efficiency"] >= GOAL_EFFICIENCY for r in parallel if r["workers"] > 1)
    print(f"  pack {per_core:.0f} vs tarfile copy {base_core:.0f} samples per CPU-second: {ratio:.2f}x", file=sys.stderr)
    result = {"name": "pack", "unit": "samples per CPU-second (one process)", "ours": round(per_core, 1),
              "baseline": round(base_core, 1), "ratio": round(ratio, 3),
              "goal": f"ratio >= {GOAL_PER_CORE} and parallel efficiency >= {GOAL_EFFICIENCY}",
              "goal_met": ratio >= GOAL_PER_CORE and efficiency_ok,
              "wall_samples_per_s": {"ours": round(n / t_ours[0], 1), "baseline": round(n / t_base[0], 1),
                                     "ratio": round(t_base[0] / t_ours[0], 3)},
              "parallel": parallel, "samples": n, "source_mib": round(size / 2**20, 1),
              "mib_per_cpu_s": round(size / 2**20 / t_ours[1], 1), "train_shards": args.shards, "repeat": repeat,
              "storage": storage, "plan_share_of_one_process": round(serial, 3),
              "projection_100m_hours": {
                  "one_core": round(SAMPLES_100M / per_core / 3600, 2),
                  **{f"{c}_cores": round(SAMPLES_100M / per_core * (serial + (1 - serial) / c) / 3600, 2)
                     for c in (8, 32, 64)},
                  "note": "Amdahl's law with the measured planning share as the serial part; the plan holds every "
                          "record in memory (about 1 KB per sample)"},
              "ours_includes": "plan + stratified split + deterministic tars hashed while written + fsync'd atomic "
                               "renames + manifest + datasheet + dataset card",
              "local_pool_best_efficiency": max((r["efficiency"] for r in local if r["workers"] > 1), default=None)}
    return gate(result, [*problems, *more])
