"""JupyterLab for the project: bound to 127.0.0.1, token-protected, with the project kernel registered."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

KERNEL_NAME = "gpic-lab"
KERNEL_DISPLAY = "Python (gpic_lab)"


_KERNEL_LOCK = threading.Lock()


def _same_interpreter(spec: Path) -> bool:
    """Does the kernel spec run this environment's Python? (`bin/python` and `bin/python3` are the same one)"""
    try:
        argv0 = json.loads(spec.read_text()).get("argv", [""])[0]
    except (OSError, ValueError):
        return False
    return Path(argv0).parent.resolve() == Path(sys.executable).parent.resolve() and \
        os.path.realpath(argv0) == os.path.realpath(sys.executable)


def ensure_kernel() -> Path:
    """Register this interpreter as the `gpic-lab` kernel in the venv (sys.prefix) unless already there."""
    from gpic_lab.errors import GpicError

    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    with _KERNEL_LOCK:  # fan-out threads start runs at the same time
        if _same_interpreter(spec_dir / "kernel.json"):
            return spec_dir
        proc = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                               "--display-name", KERNEL_DISPLAY], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise GpicError(f"cannot register the {KERNEL_NAME} Jupyter kernel in {sys.prefix}: {last}")
    return spec_dir


def lab_command(root: Path, port: int, open_path: str = "notebooks") -> list[str]:
    """The `jupyter lab` command line: localhost only, no browser, opened on `open_path`. The token is not on it
    (any local user can read a command line through `ps`): it travels in the environment (`lab_env`), which only
    the user who started the server can read."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--ServerApp.root_dir={root}",
           f"--LabApp.default_url=/lab/tree/{open_path}", f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab_env(token: str) -> dict[str, str]:
    """This process's environment plus JUPYTER_TOKEN, where jupyter_server reads its token from."""
    return {**os.environ, "JUPYTER_TOKEN": token}


def new_token() -> str:
    """A random token unless GPIC_LAB_TOKEN is set."""
    return os.environ.get("GPIC_LAB_TOKEN") or secrets.token_hex(24)


def start(root: Path, port: int, token: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start JupyterLab in its own process group (so `stop` also ends its kernels)."""
    ensure_kernel()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns the handle
    return subprocess.Popen(lab_command(root, port), cwd=root, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env=lab_env(token))


def wait_ready(port: int, token: str, timeout: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> dict:
    """Poll the server's REST API until it answers; returns /api/status.

    Raises TimeoutError, or GpicError at once when `proc` (the server) exits first, e.g. because the port is taken.
    """
    from gpic_lab.errors import GpicError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise GpicError(f"JupyterLab exited (code {proc.returncode}) before answering on 127.0.0.1:{port}; "
                            f"is the port taken? try --port")
        try:
            return api_get(port, token, "/api/status")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on 127.0.0.1:{port} within {timeout:.0f}s")


def api_get(port: int, token: str, path: str) -> dict:
    """GET a Jupyter server REST endpoint on 127.0.0.1 with the token."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Terminate the server's process group (server and kernels), killing it if it does not exit."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
