"""JupyterLab starts on 127.0.0.1 with the project kernel and lists the notebooks."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from gpic_lab.runs import lab

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lab_lists_notebooks_and_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    port, token = lab.free_port(), "t" + "0" * 31
    proc = lab.start(ROOT, port, token, log=tmp_path / "lab.log")
    try:
        lab.wait_ready(port, token)
        listing = lab.api_get(port, token, "/api/contents/notebooks")
        names = {item["name"] for item in listing["content"]}
        expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert expected and expected <= names
        specs = lab.api_get(port, token, "/api/kernelspecs")
        assert specs["kernelspecs"][lab.KERNEL_NAME]["spec"]["display_name"] == lab.KERNEL_DISPLAY
        with pytest.raises(urllib.error.HTTPError) as denied:
            lab.api_get(port, "wrong-token", "/api/contents/notebooks")
        assert denied.value.code == 403
    finally:
        lab.stop(proc)
    assert proc.poll() is not None


def test_lab_command_is_localhost_only_with_token() -> None:
    cmd = lab.lab_command(ROOT, 9999)
    assert "--ip=127.0.0.1" in cmd and "--no-browser" in cmd and lab.lab_env("abc")["JUPYTER_TOKEN"] == "abc"
    assert f"--MappingKernelManager.default_kernel_name={lab.KERNEL_NAME}" in cmd


@pytest.mark.slow
def test_lab_on_a_taken_port_fails_fast_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import subprocess
    import sys
    import time

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "lab", "--port", str(port)], capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is the port taken" in proc.stderr.strip().splitlines()[-1]
    assert time.monotonic() - start < 60  # not the 90 s readiness timeout


def test_ensure_kernel_registers_this_interpreter() -> None:
    import json
    import sys

    spec = lab.ensure_kernel() / "kernel.json"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable


def test_kernel_spec_of_python3_sibling_is_the_same_interpreter(tmp_path: Path) -> None:
    import json
    import sys

    spec = tmp_path / "kernel.json"
    sibling = Path(sys.executable).with_name("python3")
    if sibling.exists():  # `gpic-lab` (bin/python3) and `make setup` (bin/python) must not re-register in turn
        spec.write_text(json.dumps({"argv": [str(sibling), "-m", "ipykernel_launcher"]}))
        assert lab._same_interpreter(spec)
    spec.write_text(json.dumps({"argv": [str(tmp_path / "python"), "-m", "ipykernel_launcher"]}))
    assert not lab._same_interpreter(spec)
    spec.write_text("{cut")
    assert not lab._same_interpreter(spec)
