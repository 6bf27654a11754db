"""What every `gpic-lab bench NAME` run shares: the correctness gate, the results file and the README table.

A bench's `run(args)` returns a dict with at least name, unit, ours, baseline, ratio. When its two sides disagree
(different rows, decisions, missing samples, recall under its goal) it also returns ``mismatch``: a one-line
reason. `finish` then sets ``ratio`` to None, appends the result to the results file, prints it as the last
stdout line and raises GpicError, so the command exits 1 with the reason on stderr.

The results file (``benchmarks/results.jsonl`` in the checkout, or ``$GPIC_LAB_BENCH_RESULTS``) gets one JSON line
per run: the bench's result plus ``recorded`` = date, machine (CPU model, cores, GPU), git commit and arguments.
`render_table` turns it into the README's benchmark table (``scripts/bench_table.py`` writes it between the
``<!-- BENCHES -->`` markers), so no figure in that table is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpic_lab import paths
from gpic_lab.errors import GpicError

REQUIRED = ("name", "unit", "ours", "baseline", "ratio")
RESULTS_ENV = "GPIC_LAB_BENCH_RESULTS"
BEGIN, END = "<!-- BENCHES -->", "<!-- /BENCHES -->"


def results_path() -> Path:
    """$GPIC_LAB_BENCH_RESULTS, else benchmarks/results.jsonl in the checkout (the state dir outside one)."""
    env = os.environ.get(RESULTS_ENV)
    if env:
        return Path(env)
    root = paths.project_root()
    if (root / "pyproject.toml").is_file() and (root / "gpic_lab").is_dir():
        return root / "benchmarks" / "results.jsonl"
    return paths.state_root() / "benchmarks" / "results.jsonl"


def gate(result: dict[str, Any], problems: Iterable[str | None]) -> dict[str, Any]:
    """Record every non-empty problem in ``result["mismatch"]`` (joined by '; '); returns ``result``."""
    found = [p for p in problems if p]
    if found:
        result["mismatch"] = "; ".join(found)
    return result


def cpu_model() -> str:
    """The CPU model name (Linux /proc/cpuinfo; elsewhere what platform knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    """Names of the CUDA GPUs: from torch when the bench already imported it, else nvidia-smi; [] without one."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return []
        except Exception:  # noqa: BLE001 - a broken CUDA setup: fall back to nvidia-smi
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), GPUs, OS and Python version."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable, "gpus": gpus(),
            "os": platform.platform(terse=True), "python": platform.python_version()}


def git_commit() -> dict[str, Any]:
    """The commit of the checkout the package runs from and whether tracked files differ from it (the results file
    and the README, which benchmarks themselves update, do not count: three runs in a row measure the same code)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results.jsonl",
                  ":(exclude)README.md")
    return {"commit": commit, "dirty": bool(changed)}


def provenance(argv: list[str]) -> dict[str, Any]:
    """Date (UTC), machine, commit and the command's arguments, for one results line."""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **git_commit(),
            "args": list(argv)}


def append(result: dict[str, Any], argv: list[str], path: Path | None = None) -> Path:
    """Append ``result`` with its provenance as one line to the results file; returns the file's path."""
    path = path or results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**result, "recorded": provenance(argv)}, sort_keys=True, default=float)
    with open(path, "a", encoding="utf-8") as fh:  # one write of one line: concurrent runs never interleave
        fh.write(line + "\n")
    return path


def finish(result: dict[str, Any], argv: list[str]) -> int:
    """Check the contract keys, apply the correctness gate, record, print the JSON line; 0, or GpicError (exit 1)
    when the two sides disagreed."""
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        raise GpicError(f"benchmark {result.get('name')} did not report {missing}")
    if result.get("mismatch"):
        result["ratio"] = None
    where = append(result, argv)
    print(f"recorded in {where}", file=sys.stderr)
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True, default=float), flush=True)
    if result.get("mismatch"):
        raise GpicError(f"bench {result['name']}: correctness check failed, no ratio: {result['mismatch']}")
    return 0


def read_results(path: Path | None = None) -> list[dict[str, Any]]:
    """Every line of the results file (none when it does not exist)."""
    path = path or results_path()
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _num(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}" if abs(x) >= 1 else f"{x:.3g}"


def machine_label(rec: dict[str, Any]) -> str:
    """'2 × AMD EPYC' (+ ', NVIDIA H200') from a results line's provenance."""
    m = rec.get("recorded", {}).get("machine", {})
    label = f"{m.get('cores', '?')} × {m.get('cpu', '?')}"
    gpu = m.get("gpus") or []
    return label + (f", {gpu[0]}" + (f" ×{len(gpu)}" if len(gpu) > 1 else "") if gpu else "")


def _command(rec: dict[str, Any]) -> str:
    args = rec.get("recorded", {}).get("args") or [rec.get("name", "?")]
    return "`bench " + " ".join(str(a) for a in args) + "`"


def _ratio(rec: dict[str, Any]) -> str:
    if rec.get("mismatch"):
        return "**failed**"
    return _num(rec.get("ratio")) + "×"


def _goal(runs: list[dict[str, Any]]) -> str:
    goal = next((r["goal"] for r in runs if r.get("goal")), None)
    if not goal:
        return ""
    met = [r.get("goal_met") for r in runs]
    known = [m for m in met if m is not None]
    return f"{goal}: met in {sum(bool(m) for m in known)}/{len(known)}" if known else str(goal)


def render_table(rows: list[dict[str, Any]], last: int = 3) -> str:
    """The README benchmark table: one line per (bench, arguments, machine) with the newest run's figures and the
    ratios of the last `last` runs on that run's commit (newest first; older commits' runs stay in the file but not
    in the table); failed runs (a correctness mismatch) say so."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in rows:
        groups.setdefault((str(rec.get("name")), _command(rec), machine_label(rec)), []).append(rec)
    lines = ["| bench | command | ours | baseline | unit | ratio, newest first | goal | machine | date | commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (name, command, label), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r.get("recorded", {}).get("date", ""), reverse=True)
        commit_of = [r.get("recorded", {}).get("commit") for r in runs]
        runs = [r for r, c in zip(runs, commit_of, strict=True) if c == commit_of[0]][:last]
        new = runs[0]
        rec = new.get("recorded", {})
        commit = (rec.get("commit") or "?")[:10] + ("+" if rec.get("dirty") else "")
        lines.append(" | ".join([
            f"| `{name}`", command, _num(new.get("ours")), _num(new.get("baseline")), str(new.get("unit", "")),
            ", ".join(_ratio(r) for r in runs), _goal(runs), label, rec.get("date", "?")[:10], f"`{commit}` |"]))
    return "\n".join(lines)


def update_readme(readme: Path, rows: list[dict[str, Any]], check: bool = False) -> bool:
    """Replace the table between the README's BENCHES markers with `render_table(rows)` (text above the table
    inside the markers is kept). Returns True when the README already held exactly that table; with `check` nothing
    is written."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise GpicError(f"{readme}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    intro = block.split("\n| bench |", 1)[0].rstrip("\n")
    new_block = f"{intro}\n\n{render_table(rows)}\n" if intro.strip() else f"\n{render_table(rows)}\n"
    same = new_block == block
    if not same and not check:
        from gpic_lab.fsio import atomic_path

        with atomic_path(readme) as tmp:
            Path(tmp).write_text(head + BEGIN + new_block + END + tail, encoding="utf-8")
    return same
