"""`gpic-lab run -p` with hostile expressions is a one-line usage error (no MemoryError, no RecursionError, no
megabyte-long message); `gpic-lab lab` keeps its token off the command line and stops JupyterLab on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import crafted
import pytest

from gpic_lab.errors import UsageError
from gpic_lab.runs import lab
from gpic_lab.runs.params import Param, coerce

ROOT = Path(__file__).resolve().parents[1]
cli = crafted.cli
HOSTILE = {"sum-chain": "1+" * 1_000_000 + "1", "minus-chain": "-" * 10_000_000 + "1",
           "parens": "(" * 1_000_000, "long-list": "[" + "1," * 3_000_000 + "1]"}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_parameter_expressions_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError) as err:
        coerce(Param("shards", list, []), raw)
    assert len(str(err.value)) < 300


def test_run_cli_refuses_a_huge_expression_before_any_kernel(tmp_path: Path) -> None:
    rc, _, err = cli(["run", str(ROOT / "notebooks" / "04_dedup.ipynb"), "-p", "shards", HOSTILE["sum-chain"]])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and len(err) < 400


def test_lab_token_is_not_on_the_command_line() -> None:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lab.subprocess, "Popen", lambda cmd, **kw: (cmd, kw))
        m.setattr(lab, "ensure_kernel", lambda: None)
        cmd, kw = lab.start(ROOT, 9999, "s3cr3t-token")
    assert not any("s3cr3t-token" in part for part in cmd) and kw["env"]["JUPYTER_TOKEN"] == "s3cr3t-token"
    assert lab.lab_env("s3cr3t-token")["JUPYTER_TOKEN"] == "s3cr3t-token"


@pytest.mark.slow
def test_lab_stops_jupyterlab_on_sigterm(tmp_path: Path) -> None:
    import psutil

    port = lab.free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "GPIC_LAB_TOKEN": "t" * 32,
           "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "out.txt", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gpic_lab.commands.cli", "lab", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while "JupyterLab: http" not in (tmp_path / "out.txt").read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "out.txt").read_text()
                time.sleep(0.5)
            server = [p for p in psutil.Process(proc.pid).children(recursive=True) if "jupyterlab" in " ".join(p.cmdline())]
            assert server and not any("t" * 32 in " ".join(p.cmdline()) for p in server)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    _, alive = psutil.wait_procs(server, timeout=30)
    assert not alive
