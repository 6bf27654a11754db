"""Helpers for tests that kill a child process in the middle of its work."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path


def kill_after_shard(child: subprocess.Popen, state: Path, shard_index: int, timeout: float = 60) -> None:
    """SIGKILL `child` as soon as its collection state (``state.json``) reaches `shard_index`, then reap it;
    asserts that it was killed and had not finished."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if json.loads(state.read_text())["shard_index"] >= shard_index:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert not json.loads(state.read_text())["done"]
