"""Engines: the same stage gives identical decisions on the local pool and on Dask, and a killed worker loses
nothing and redoes no finished shard."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from gpic_lab.engine.backends import map_tasks
from gpic_lab.engine.stages import run_stage
from gpic_lab.errors import GpicError, UsageError
from gpic_lab.shards.reader import iter_samples

pytestmark = pytest.mark.slow


def crashing_stage(samples, params):
    """Logs start/end per shard; on the shard named by params['crash_on'] it kills its own worker process once
    (while the flag file exists), the way an OOM kill or a preempted node would."""
    from gpic_lab.engine.records import Decision

    shard = Path(samples[0].shard).stem
    log = Path(params["log"])
    with open(log, "a") as fh:
        fh.write(f"start {shard}\n")
    flag = Path(params["flag"])
    if shard == params["crash_on"] and flag.exists():
        flag.unlink()
        os._exit(17)
    time.sleep(float(params.get("sleep", 0.0)))
    with open(log, "a") as fh:
        fh.write(f"end {shard}\n")
    return [Decision(s.key, i % 2 == 0, None if i % 2 == 0 else "odd") for i, s in enumerate(samples)]


def _ends(log: Path) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith("end ")]


def _sorted(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values("key").reset_index(drop=True)


def test_local_and_dask_give_identical_decisions(sample_dir: Path, tmp_path: Path) -> None:
    paths = [sample_dir / "raw", sample_dir / "train"]
    local = run_stage("license", paths, tmp_path / "local", workers=2, progress=False)
    dask = run_stage("license", paths, tmp_path / "dask", engine="dask", workers=2, progress=False)
    assert local["reasons"] == dask["reasons"] and dask["engine"] == "dask"
    pd.testing.assert_frame_equal(_sorted(tmp_path / "local" / "decisions.parquet"),
                                  _sorted(tmp_path / "dask" / "decisions.parquet"))


def test_local_pool_killed_worker_then_resume(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(6, 2)
    log, flag = tmp_path / "log.txt", tmp_path / "crash.flag"
    flag.touch()
    params = {"log": str(log), "flag": str(flag), "crash_on": "gpic_train_00004", "sleep": 0.2}
    out = tmp_path / "out"
    with pytest.raises(GpicError, match="worker process died"):
        run_stage("test_engines:crashing_stage", shards, out, params, workers=2, progress=False)
    finished = {p.stem: p.stat().st_mtime_ns for p in (out / "done").glob("*.done")}
    assert "gpic_train_00004" not in finished and not (out / "decisions.parquet").exists()
    summary = run_stage("test_engines:crashing_stage", shards, out, params, workers=2, progress=False)
    assert summary["skipped"] == len(finished) and summary["computed"] == 6 - len(finished)
    ends = _ends(log)
    assert set(ends) == {Path(s).stem for s in shards}, "every shard finished"
    # the pool terminates the dead worker's siblings, so a shard whose stage had returned but whose marker was not
    # yet written may run again; a shard with a marker never does
    assert all(ends.count(s) == 1 for s in finished), "no shard with a marker ran again"
    assert all((out / "done" / f"{s}.done").stat().st_mtime_ns == t for s, t in finished.items())
    keys = sorted(s.key for s in iter_samples(shards, images=False))
    assert sorted(pd.read_parquet(out / "decisions.parquet")["key"]) == keys


def test_dask_reschedules_the_task_of_a_killed_worker(tiny_shards, tmp_path: Path) -> None:
    shards = tiny_shards(4, 2)
    log, flag = tmp_path / "log.txt", tmp_path / "crash.flag"
    flag.touch()
    params = {"log": str(log), "flag": str(flag), "crash_on": "gpic_train_00001", "sleep": 0.1}
    summary = run_stage("test_engines:crashing_stage", shards, tmp_path / "out", params, engine="dask", workers=2,
                        progress=False)
    assert summary["computed"] == 4 and summary["samples"] == 8 and summary["reasons"] == {"kept": 4, "odd": 4}
    starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start ")]
    assert starts.count("gpic_train_00001") == 2, "the killed task ran again on a live worker"
    assert sorted(_ends(log)) == sorted(Path(s).stem for s in shards), "nothing done twice"


def test_engine_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpic_lab.engine.backends.CONNECT_TIMEOUT", "2s")
    with pytest.raises(UsageError, match="unknown engine"):
        list(map_tasks(str, [1], engine="ray"))
    with pytest.raises(UsageError, match="needs --engine dask"):
        list(map_tasks(str, [1], engine="local", scheduler="tcp://127.0.0.1:1"))
    with pytest.raises(GpicError, match="cannot reach the Dask scheduler"):
        list(map_tasks(str, [1, 2], engine="dask", scheduler="tcp://127.0.0.1:9"))


def test_remote_scheduler_address_and_gpu_resources(tiny_shards, tmp_path: Path) -> None:
    """`--scheduler tcp://...` sends work to an existing cluster; GPU tasks run on a worker offering GPU=1."""
    from distributed import LocalCluster

    shards = tiny_shards(3, 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      resources={"GPU": 1}) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        summary = run_stage("license", shards, tmp_path / "remote", engine="dask", scheduler=cluster.scheduler_address,
                            progress=False)
        squares = dict(map_tasks(pow_two, [1, 2, 3], engine="dask", scheduler=cluster.scheduler_address, gpu=True))
    assert summary["samples"] == 6 and summary["scheduler"] == cluster.scheduler_address
    assert squares == {1: 1, 2: 4, 3: 9}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cpu_only:
        with pytest.raises(GpicError, match="offers a GPU resource"):
            list(map_tasks(pow_two, [1], engine="dask", scheduler=cpu_only.scheduler_address, gpu=True))


def pow_two(x: int) -> int:
    return x * x


def test_dask_run_stopped_by_a_lost_task_then_resumed(tiny_shards, tmp_path: Path) -> None:
    """A Dask run that cannot recover a killed worker's task (no retries allowed) stops with a one-line error;
    rerunning the same command on Dask computes only the shards without a marker."""
    import dask
    import distributed  # noqa: F401 - its config defaults must exist before dask.config.set is undone

    shards = tiny_shards(4, 2)
    log, flag = tmp_path / "log.txt", tmp_path / "crash.flag"
    flag.touch()
    params = {"log": str(log), "flag": str(flag), "crash_on": "gpic_train_00002", "sleep": 0.1}
    out = tmp_path / "out"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), pytest.raises(GpicError):
        run_stage("test_engines:crashing_stage", shards, out, params, engine="dask", workers=2, progress=False)
    finished = {p.stem: p.stat().st_mtime_ns for p in (out / "done").glob("*.done")}
    assert "gpic_train_00002" not in finished
    summary = run_stage("test_engines:crashing_stage", shards, out, params, engine="dask", workers=2,
                        progress=False)
    assert summary["skipped"] == len(finished) and summary["computed"] == 4 - len(finished)
    ends = _ends(log)  # closing the cluster may stop a task between its stage's end and its marker: it reruns
    assert set(ends) == {Path(s).stem for s in shards}, "every shard finished"
    assert all(ends.count(s) == 1 for s in finished), "no shard with a marker ran again"
    assert all((out / "done" / f"{s}.done").stat().st_mtime_ns == t for s, t in finished.items())
    assert summary["samples"] == 8 and summary["reasons"] == {"kept": 4, "odd": 4}


def fail_on_three(item: dict) -> int:
    if item["n"] == 3:
        raise ValueError("three is refused")
    return sum(len(r["tags"]) for r in item["records"])


def test_dask_items_arrive_whole_and_a_failing_task_names_its_item() -> None:
    """Items go to the workers pickled whole (nested records included) and a task's exception comes back as one
    GpicError line naming the item, on a standing cluster as on a LocalCluster of our own."""
    from distributed import LocalCluster

    items = [{"n": n, "records": [{"tags": ["a"] * (i % 4)} for i in range(2000)]} for n in range(3)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        got = {item["n"]: total for item, total in map_tasks(fail_on_three, items, engine="dask",
                                                              scheduler=cluster.scheduler_address)}
        assert got == {n: 3000 for n in range(3)}
        with pytest.raises(GpicError, match=r"^item 3: ValueError: three is refused$"):
            list(map_tasks(fail_on_three, [*items, {"n": 3, "records": []}], engine="dask",
                           scheduler=cluster.scheduler_address, label=lambda it: f"item {it['n']}"))


def none_unless_even(x: int) -> int | None:
    return x if x % 2 == 0 else None


def test_dask_results_that_are_none_or_falsy_come_back_as_they_are() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        got = dict(map_tasks(none_unless_even, [0, 1, 2], engine="dask", scheduler=cluster.scheduler_address))
    assert got == {0: 0, 1: None, 2: 2}


def touch(path: str) -> str:
    """A task: create ``path``."""
    Path(path).touch()
    return path


def test_a_local_pool_runs_each_task_as_an_iterator_yields_it(tmp_path: Path) -> None:
    """The second item is made only once the first task has run: listing the items first would wait forever."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")

    def items():
        yield first
        deadline = time.monotonic() + 60
        while not Path(first).exists():
            assert time.monotonic() < deadline, "the first task did not run before the next item was asked for"
            time.sleep(0.01)
        yield second

    assert sorted(r for _, r in map_tasks(touch, items(), workers=2)) == [first, second]
    assert list(map_tasks(touch, iter([]), workers=2)) == []
    assert sorted(r for _, r in map_tasks(touch, (p for p in [first]), workers=1)) == [first]


def _light_settings() -> tuple[object, object]:
    import dask

    return dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.admin.tick.interval")


def test_the_engines_local_cluster_runs_light_and_leaves_the_callers_settings_alone() -> None:
    """Its workers run without the profiler and with a 1 s tick (a worker the nanny restarts too); the caller's own
    Dask settings are what they were."""
    from distributed import Client

    from gpic_lab.engine.backends import local_cluster

    before = _light_settings()
    assert before != (False, "1s")
    with local_cluster(2) as cluster, Client(cluster) as client:
        settings = client.run(_light_settings)
        assert len(settings) == 2 and all(tuple(s) == (False, "1s") for s in settings.values())
        first = set(settings)
        client.restart()
        settings = client.run(_light_settings)
        assert set(settings) != first and all(tuple(s) == (False, "1s") for s in settings.values())
        assert [r for _, r in map_tasks(len, ["ab", "cde"], "dask", client, 2)] in ([2, 3], [3, 2])
    assert _light_settings() == before


def test_dask_runs_each_task_as_an_iterator_yields_it(tmp_path: Path) -> None:
    """As with the local pool: the second item is made only once the first task has run; the items after it still
    go in batches, and every one comes back once."""
    from distributed import Client

    from gpic_lab.engine.backends import local_cluster

    paths = [str(tmp_path / f"item{i}") for i in range(9)]

    def items():
        yield paths[0]
        deadline = time.monotonic() + 60
        while not Path(paths[0]).exists():
            assert time.monotonic() < deadline, "the first task did not run before the next item was asked for"
            time.sleep(0.01)
        yield from paths[1:]

    with local_cluster(2) as cluster, Client(cluster) as client:
        got = [r for _, r in map_tasks(touch, items(), "dask", client)]
        assert sorted(got) == paths and len(got) == len(set(got))
        assert list(map_tasks(touch, iter([]), "dask", client)) == []
