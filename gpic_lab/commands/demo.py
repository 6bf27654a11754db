"""`gpic-lab demo`: run every notebooks/NN_*.ipynb in numeric order on the sample corpus (done runs skip)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the notebook chain on data/sample/ through `gpic-lab run`")
    p.add_argument("--force", action="store_true", help="rerun notebooks whose run is DONE")
    p.add_argument("--only", default=None, help="regex on notebook names")
    p.set_defaults(func=run)


def chain(root: Path, only: str | None = None) -> list[Path]:
    """The numbered notebooks in pipeline order."""
    found = sorted(p for p in (root / "notebooks").glob("*.ipynb") if re.match(r"^\d\d_", p.name))
    return [p for p in found if not only or re.search(only, p.name)]


def run(args: argparse.Namespace) -> int:
    from gpic_lab.paths import project_root
    from gpic_lab.runs.runner import run_notebook

    results = []
    for nb in chain(project_root(), args.only):
        print(f"demo: running {nb.name} ...", file=sys.stderr, flush=True)
        result = run_notebook(nb, {}, force=args.force)
        results.append(result)
        print(f"demo: {result.status:7s} {nb.name} ({result.seconds:.0f}s) {result.message}", file=sys.stderr, flush=True)
    print(f"{'notebook':40s} {'status':8s} {'seconds':>8s}  run directory")
    for r in results:
        print(f"{r.notebook:40s} {r.status:8s} {r.seconds:8.1f}  {r.run_dir}")
    failed = [r for r in results if r.status == "failed"]
    print(f"{len(results)} notebooks: {sum(r.status == 'done' for r in results)} done, "
          f"{sum(r.status == 'skipped' for r in results)} skipped, {len(failed)} failed")
    return 1 if failed else 0
