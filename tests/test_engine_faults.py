"""Faults around a stage's output directory and its processes: corrupt or directory done-markers are one-line usage
errors; a stage whose parent is killed takes its workers, forkserver and resource tracker with it; a full disk
(simulated with RLIMIT_FSIZE, which fails writes the way ENOSPC does) is one line in stage, catalog and pack, and
what was finished before stays usable."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import crafted
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
cli = crafted.cli


def slow_stage(samples, params):
    """Writes one file per shard it starts (in params['log_dir']), then sleeps; keeps everything."""
    from gpic_lab.engine.records import Decision

    Path(params["log_dir"], Path(samples[0].shard).stem).write_text(str(os.getpid()))
    time.sleep(float(params.get("sleep", 0.0)))
    return [Decision(s.key, True) for s in samples]


@pytest.mark.parametrize("bad", ["garbage", "list", "directory"])
def test_corrupt_or_directory_markers_are_one_line_usage_errors(tmp_path: Path, tiny_shards, bad: str) -> None:
    shards = tiny_shards(2, 2)
    out = tmp_path / "out"
    assert cli(["stage", "license", *map(str, shards), "--out", str(out), "--workers", "1", "--no-progress"])[0] == 0
    marker = out / "done" / "gpic_train_00001.done"
    marker.unlink()
    if bad == "directory":
        marker.mkdir()
    else:
        marker.write_text("{not json" if bad == "garbage" else "[1, 2]")
    for force in ([], ["--force"]):
        rc, _, err = cli(["stage", "license", *map(str, shards), "--out", str(out), "--workers", "1",
                          "--no-progress", *force])
        assert rc == 2, err
        assert len(_problem_lines(err)) == 1 and "gpic_train_00001.done" in err
    assert (out / "done" / "gpic_train_00000.done").is_file()


def test_a_missing_shard_table_behind_a_marker_is_one_line(tmp_path: Path, tiny_shards) -> None:
    shards = tiny_shards(2, 2)
    out = tmp_path / "out"
    assert cli(["stage", "license", *map(str, shards), "--out", str(out), "--workers", "1", "--no-progress"])[0] == 0
    (out / "shards" / "gpic_train_00000.parquet").write_bytes(b"not parquet")
    rc, _, err = cli(["stage", "license", *map(str, shards), "--out", str(out), "--workers", "1", "--no-progress"])
    assert rc == 1 and len(_problem_lines(err)) == 1 and "--force" in err


def _problem_lines(err: str) -> list[str]:
    """stderr without the timestamped INFO milestone lines a headless run logs (gpic_lab.progress)."""
    return [ln for ln in err.strip().splitlines() if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d INFO ", ln)]


def _tree(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_killing_a_stage_takes_its_workers_with_it(tmp_path: Path, tiny_shards, sig: int) -> None:
    import psutil

    shards = tiny_shards(6, 1)
    logs, out = tmp_path / "logs", tmp_path / "out"
    logs.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    with open(tmp_path / "stderr.txt", "w") as err_file:  # a file: children holding a pipe would block reading it
        proc = subprocess.Popen([sys.executable, "-m", "gpic_lab.commands.cli", "stage",
                                 "test_engine_faults:slow_stage", *map(str, shards), "--out", str(out), "--workers", "2",
                                 "--no-progress", "-p", f"log_dir={logs}", "-p", "sleep=3"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err_file)
    deadline = time.monotonic() + 120
    while len(list(logs.iterdir())) < 2 and time.monotonic() < deadline:  # both workers are inside a shard
        time.sleep(0.1)
    assert len(list(logs.iterdir())) == 2
    children = _tree(proc.pid)
    assert len(children) >= 3  # forkserver (+ resource tracker) and two workers
    proc.send_signal(sig)
    proc.wait(timeout=60)
    err = (tmp_path / "stderr.txt").read_text()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    if sig == signal.SIGTERM:
        assert len(_problem_lines(err)) == 1 and "Traceback" not in err
    started = set(p.name for p in logs.iterdir())
    time.sleep(4)  # longer than a shard takes: nothing left running would start or finish one now
    assert set(p.name for p in logs.iterdir()) == started
    done = {p.stem for p in (out / "done").glob("*.done")} if (out / "done").exists() else set()
    assert not done - started


def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _run(argv: list[str], limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", *argv], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limited(limit) if limit else None,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _full_disk_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "File too large" in lines[-1] or "No space" in lines[-1]
    return lines[-1]


@pytest.mark.slow
def test_full_disk_in_stage_keeps_finished_shards_and_resumes(tmp_path: Path, tiny_shards) -> None:
    shards = [str(s) for s in tiny_shards(4, 3)]
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert _run(["stage", "license", *shards[:2], "--out", str(out), "--workers", "1", "--no-progress"]).returncode == 0
    before = {p.name: p.read_bytes() for p in (out / "done").iterdir()}
    line = _full_disk_line(_run(["stage", "license", *shards, "--out", str(out), "--workers", "2", "--no-progress"],
                                limit=2048))
    assert "rerun" in line
    assert {p.name: p.read_bytes() for p in (out / "done").iterdir()} == before
    assert _run(["stage", "license", *shards, "--out", str(out), "--workers", "2", "--no-progress"]).returncode == 0
    assert _run(["stage", "license", *shards, "--out", str(clean), "--workers", "1", "--no-progress"]).returncode == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "decisions.parquet"), pd.read_parquet(clean / "decisions.parquet"))


@pytest.mark.slow
def test_full_disk_in_catalog_and_pack_leaves_earlier_outputs(tmp_path: Path, tiny_shards) -> None:
    shards = [str(s) for s in tiny_shards(2, 6)]
    cat = tmp_path / "cat.parquet"
    assert _run(["catalog", *shards[:1], "-o", str(cat), "--workers", "1"]).returncode == 0
    before = cat.read_bytes()
    _full_disk_line(_run(["catalog", *shards, "-o", str(cat), "--workers", "1"], limit=1024))
    assert cat.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))
    out = tmp_path / "packed"
    assert _run(["pack", shards[0], "--out", str(out), "--shards", "1"]).returncode == 0
    _full_disk_line(_run(["pack", *shards, "--out", str(out), "--shards", "1", "--no-validate"], limit=8192))
    assert _run(["verify", str(out)]).returncode == 0  # the earlier pack is intact
    assert not list(out.rglob("*.tmp"))
