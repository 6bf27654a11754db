"""A headless Chromium tab driven over the DevTools protocol: load a 127.0.0.1 page, run JavaScript, move the
mouse, take screenshots. What ``browser.screenshot`` cannot do (hover a point, click, wait for a widget) for the
screenshots of interactive controls. Same flags as ``browser`` (no sandbox, no GPU, throwaway profile); the
DevTools port listens on 127.0.0.1 only and every page visited must be on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gpic_lab.errors import GpicError, UsageError


class Page:
    """One tab of a private headless Chromium; ``close()`` (or ``with``) stops the browser."""

    def __init__(self, width: int = 1400, height: int = 900, timeout: float = 60.0) -> None:
        from gpic_lab.fo.browser import chromium

        exe = chromium()
        if exe is None:
            raise GpicError("chromium is not installed (apt-get install -y chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="gpic-cdp-", ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={width},{height}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        try:
            self._ws = self._connect(timeout)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float) -> Any:
        import urllib.request

        import websocket

        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise GpicError("headless chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:  # 127.0.0.1 only
            targets = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
        return websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=timeout,
                                           suppress_origin=True)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events received meanwhile are dropped)."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise GpicError(f"chromium {method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def goto(self, url: str, settle: float = 1.0) -> None:
        """Load ``url`` (127.0.0.1 only) and wait until the document is complete, then ``settle`` seconds."""
        if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
            raise UsageError(f"{url}: the DevTools page only visits 127.0.0.1")
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", 60)
        time.sleep(settle)

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise GpicError(f"javascript failed: {result['exceptionDetails'].get('text')} in {expression[:80]}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float = 120.0, every: float = 0.5) -> Any:
        """Poll a JavaScript expression until it is truthy; its value (GpicError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(GpicError):
                value = self.eval(condition)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise GpicError(f"timed out after {timeout:.0f} s waiting for: {condition[:120]}")
            time.sleep(every)

    def mouse(self, x: float, y: float, click: bool = False) -> None:
        """Move the mouse to (x, y) in CSS pixels; with ``click`` press and release the left button there."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        if click:
            for kind in ("mousePressed", "mouseReleased"):
                self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, out: Path, clip: dict[str, float] | None = None) -> Path:
        """Save a PNG of the viewport (or of ``clip``: x, y, width, height in CSS pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return out

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        with contextlib.suppress(Exception):
            self._ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
