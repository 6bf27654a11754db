"""The FiftyOne App for the sample dataset, seen through headless Chromium, started and stopped by the CLI.

Everything FiftyOne runs in `gpic-lab` subprocesses against a private bundled mongod (temp dir), so this
module never imports fiftyone itself and leaves no mongod, App server or browser process behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpic_lab.fo.browser import chromium

pytestmark = [pytest.mark.fiftyone, pytest.mark.browser]
GPIC_LAB = str(Path(sys.executable).with_name("gpic-lab"))


def _alive(pids: list[int]) -> list[int]:
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install -y chromium)")
def test_app_renders_dataset_and_stops_cleanly(sample_dir: Path, tmp_path: Path) -> None:
    import psutil

    from gpic_lab.fo import browser as fo_browser
    from gpic_lab.fo import services as fo_services

    name = "gpic_app_test"
    with fo_services.private_mongod(tmp_path / "db") as uri:
        env = dict(os.environ, FIFTYONE_DATABASE_URI=uri, FIFTYONE_CONFIG_DIR=str(tmp_path / "config"),
                   GPIC_LAB_STATE=str(tmp_path / "state"), FIFTYONE_DO_NOT_TRACK="true")
        load = subprocess.run([GPIC_LAB, "fiftyone", "load", *(str(sample_dir / d) for d in ("train", "val", "test")),
                               "--name", name], env=env, capture_output=True, text=True, timeout=300)
        assert load.returncode == 0, load.stderr
        port = fo_services.free_port()
        app = subprocess.Popen([GPIC_LAB, "app", name, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            url = None
            deadline = time.monotonic() + 180
            while url is None and time.monotonic() < deadline:
                line = app.stdout.readline()
                if not line:
                    pytest.fail(f"gpic-lab app exited early: {app.stderr.read()[-800:]}")
                if line.startswith("app: http://127.0.0.1:"):
                    url = line.split()[1]
            assert url == f"http://127.0.0.1:{port}/datasets/{name}"
            children = [p.pid for p in psutil.Process(app.pid).children(recursive=True)]
            assert children, "the App server process was not started"
            text = fo_browser.visible_text(fo_browser.dump_dom(url))
            assert name in text
            assert re.search(r"\b13 samples\b", text), text[:2000]
            for field in ("key", "license", "license_family", "caption", "caption_type", "attribution", "split"):
                assert re.search(rf"\b{field}\b", text), field
            shot, _ = fo_browser.screenshot(url, tmp_path / "app_screenshot.png")
            assert shot.stat().st_size > 50_000  # a rendered grid of photos, not a blank page
        finally:
            app.send_signal(signal.SIGINT)
            rc = app.wait(timeout=60)
        assert rc == 0, app.stderr.read()[-800:]
        assert not _alive(children), "App server processes outlived `gpic-lab app`"
