"""Headless Chromium against a local page (the FiftyOne App): rendered DOM and screenshots, 127.0.0.1 only.

Chromium runs headless with the flags an offline container needs: no sandbox (containers lack the user namespaces
it wants), no GPU, no background networking, a throwaway profile, and a virtual-time budget so the single-page app
finishes rendering before the dump.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from gpic_lab.errors import GpicError, UsageError


def chromium() -> str | None:
    """The chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _command(url: str, budget_ms: int, size: tuple[int, int]) -> list[str]:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise UsageError(f"{url}: headless Chromium only visits 127.0.0.1")
    exe = chromium()
    if exe is None:
        raise GpicError("chromium is not installed (apt-get install -y chromium)")
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}"]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="gpic-chromium-") as profile:
        try:
            return subprocess.run([*args[:1], f"--user-data-dir={profile}", *args[1:]], capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise GpicError(f"chromium did not finish within {timeout:.0f} s") from None


def dump_dom(url: str, budget_ms: int = 20000, size: tuple[int, int] = (1400, 900), timeout: float = 120) -> str:
    """The DOM of `url` after rendering, as HTML text."""
    done = _run([*_command(url, budget_ms, size), "--dump-dom", url], timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise GpicError(f"chromium --dump-dom {url} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout


def screenshot(url: str, out: Path, budget_ms: int = 20000, size: tuple[int, int] = (1400, 900),
               timeout: float = 120) -> tuple[Path, float]:
    """Save a PNG screenshot of `url` to `out`; returns (path, seconds the browser took)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = _run([*_command(url, budget_ms, size), f"--screenshot={out}", url], timeout)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise GpicError(f"chromium --screenshot {url} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return out, seconds


def visible_text(html: str) -> str:
    """The text a user sees in an HTML dump: scripts and styles dropped, tags removed, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))
