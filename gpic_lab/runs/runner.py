"""Run notebooks headlessly with papermill, with run records.

Each run writes papermill_runs/<notebook-stem>/<run-id>/: the executed notebook (saved after every cell), run.log
(papermill's log and every cell's output as it happens, one timestamped line each), params.json, env.json,
metrics.json (what the notebook recorded through `record`) and DONE (last, only when every code cell ran
without error). Progress (cells done, elapsed) goes to stderr. The default run-id hashes the notebook (without outputs), the parameters, the identities of
the input files named by path parameters, and the gpic_lab version: a change reruns, an unchanged run skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpic_lab import __version__
from gpic_lab.errors import UsageError
from gpic_lab.fsio import write_bytes_atomic, write_json_atomic
from gpic_lab.paths import project_root, resolve_data, runs_root
from gpic_lab.runs.params import load_notebook, resolve

KERNEL = "gpic-lab"
RUN_ID_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)?$")  # fan-out: dir/range


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: status is done | skipped | failed."""

    notebook: str
    run_id: str
    status: str
    run_dir: Path
    seconds: float = 0.0
    message: str = ""


def _input_identity(value: Any) -> Any:
    """(size, mtime) identities of the files a path-like string parameter names, if any exist; a comma-separated
    list of paths (`shards = "sample/train,sample/raw"`) gives one identity per path."""
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 2000:
        return None
    if "," in value and _path_identity(value) is None:
        parts = [_path_identity(part.strip()) for part in value.split(",") if part.strip()]
        return parts if any(parts) else None
    return _path_identity(value)


def _path_identity(value: str) -> Any:
    try:
        path = resolve_data(value)
        if isinstance(path, str):  # a URL: its identity is the string itself (already in the parameters)
            return None
        if path.is_file():
            st = path.stat()
            return [str(path), st.st_size, st.st_mtime_ns]
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())[:10000]
            return [str(path), [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]]
    except OSError:
        return None
    return None


def notebook_digest(nb: dict[str, Any]) -> str:
    """Hash of the notebook's cells (sources and tags), ignoring outputs and execution counts."""
    cells = [(c.get("cell_type"), "".join(c.get("source", "")), c.get("metadata", {}).get("tags", [])) for c in nb["cells"]]
    return hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()


def default_run_id(nb_path: str | Path, values: dict[str, Any]) -> str:
    """12 hex chars identifying notebook content, parameters, input files and package version."""
    blob = {"nb": notebook_digest(load_notebook(nb_path)), "params": values, "version": __version__,
            "inputs": {k: _input_identity(v) for k, v in values.items()}}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:12]


def environment() -> dict[str, Any]:
    """Versions, git commit, GPU and host: the env.json of a run."""
    import importlib.metadata as md
    import platform

    versions = {}
    for name in ("gpic_lab", "torch", "numpy", "pandas", "pyarrow", "polars", "pillow", "papermill", "transformers",
                 "fiftyone", "faiss-cpu", "scipy", "dask", "webdataset"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    return {"python": sys.version.split()[0], "platform": platform.platform(), "host": platform.node(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions,
            "git_commit": commit or None, "git_dirty": bool(_git("status", "--porcelain")) if commit else None,
            "gpu": _gpu_info(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _git(*args: str) -> str:
    """stdout of a git command in the project ('' without git or outside a checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(project_root()), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _gpu_info() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        return []


def executed_ok(nb_file: Path) -> tuple[bool, str]:
    """Did every code cell execute, without an error output? (guards against truncated/incomplete runs)"""
    try:
        nb = json.loads(nb_file.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return False, f"executed notebook unreadable: {exc}"
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or not "".join(cell.get("source", "")).strip():
            continue
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return False, f"cell {i} raised an error"
        if cell.get("execution_count") is None:
            return False, f"cell {i} did not execute"
    return True, ""


def run_notebook(nb_path: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                 force: bool = False, env: dict[str, str] | None = None, quiet: bool = False,
                 execution_timeout: float | None = None, progress: bool | str = "auto") -> RunResult:
    """Validate parameters, then execute the notebook in a fresh kernel and write its run record.

    Args:
        execution_timeout: seconds one cell may run (papermill's ``--execution-timeout``); None: no limit.
        progress: cells done on stderr (``auto``/``on``/``off`` or a bool); ``quiet`` turns it and the failure
            tail off (fan-out prints its own summary).
    """
    if execution_timeout is not None and execution_timeout <= 0:
        raise UsageError(f"--execution-timeout must be > 0 seconds, got {execution_timeout}")
    nb_path = Path(nb_path)
    values = resolve(nb_path, overrides or {})  # UsageError before anything is created
    if run_id is not None and not RUN_ID_RE.match(run_id):
        raise UsageError(f"--run-id {run_id!r}: use letters, digits, '.', '_', '-' (one '/' level at most, no '..')")
    run_id = run_id or default_run_id(nb_path, values)
    target = runs_root() / nb_path.stem / run_id
    if (target / "DONE").exists() and not force:
        return RunResult(nb_path.name, run_id, "skipped", target)
    target.mkdir(parents=True, exist_ok=True)
    (target / "DONE").unlink(missing_ok=True)
    (target / "metrics.json").unlink(missing_ok=True)
    write_json_atomic(target / "params.json", values)
    write_json_atomic(target / "env.json", environment())
    from gpic_lab.runs.lab import ensure_kernel

    ensure_kernel()  # the `gpic-lab` kernel, registered in this environment if `make setup` did not (conda users)
    start = time.time()
    ok, message = _execute(nb_path, target, values, env, quiet, execution_timeout, progress)
    if not (target / "metrics.json").exists():
        write_json_atomic(target / "metrics.json", {})
    seconds = round(time.time() - start, 2)
    if not ok:
        return RunResult(nb_path.name, run_id, "failed", target, seconds, message)
    write_bytes_atomic(target / "DONE", f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {seconds}s\n".encode())
    return RunResult(nb_path.name, run_id, "done", target, seconds)


CELL_END = re.compile(r"^Ending Cell (\d+)-")
MPL_INLINE = "module://matplotlib_inline.backend_inline"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _execute(nb_path: Path, target: Path, values: dict[str, Any], env: dict[str, str] | None, quiet: bool,
             timeout: float | None = None, progress: bool | str = "auto") -> tuple[bool, str]:
    from gpic_lab.progress import bar

    out_nb = target / nb_path.name
    params_file = target / ".papermill-params.json"
    write_json_atomic(params_file, values)
    child_env = {**os.environ, **(env or {}), "GPIC_LAB_RUN_DIR": str(target), "MPLBACKEND": MPL_INLINE}
    cmd = [sys.executable, "-m", "papermill", str(nb_path), str(out_nb), "-f", str(params_file), "-k", KERNEL,
           "--cwd", str(project_root()), "--no-progress-bar", "--log-output", "--log-level", "INFO"]
    if timeout is not None:
        cmd += ["--execution-timeout", str(int(timeout) if float(timeout).is_integer() else timeout)]
    cells = len(load_notebook(nb_path)["cells"]) + 1  # papermill adds the injected-parameters cell
    tail: deque[str] = deque(maxlen=200)
    with open(target / "run.log", "a", encoding="utf-8", buffering=1) as log, \
            bar(cells, nb_path.stem, "cell", False if quiet else progress) as pbar:
        log.write(f"{_stamp()} gpic-lab run {nb_path} -> {out_nb}\n")
        proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                log.write(f"{_stamp()} {line}\n")
                tail.append(line)
                done = CELL_END.match(line)
                if done:
                    pbar.update(max(0, int(done.group(1)) - pbar.n))
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.write(f"{_stamp()} papermill exited with code {code}\n")
    params_file.unlink(missing_ok=True)
    if code != 0:
        if not quiet:
            sys.stderr.write("\n".join(list(tail)[-25:]) + f"\n(full log: {target / 'run.log'})\n")
        last = [line for line in tail if line.strip()][-1:] or ["papermill failed"]
        return False, last[0][:300]
    return executed_ok(out_nb)
