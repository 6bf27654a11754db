"""`gpic-lab run NOTEBOOK [-p NAME VALUE]... [--run-id ID] [--force]` and fan-out batch runs."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute a notebook headlessly with strict parameters and a run record",
                       description="Exit 0 done/skipped, 1 the notebook failed (executed copy kept, no DONE), "
                                   "2 bad parameters (checked before any kernel starts; no run directory).")
    p.add_argument("notebook")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p.add_argument("--run-id", default=None, help="default: hash of notebook, parameters, inputs and version")
    p.add_argument("--force", action="store_true", help="rerun even when the run is DONE")
    p.add_argument("--fan-out", default=None, metavar="NAME=START:STOP:STEP",
                   help="one run per range; the str parameter NAME gets 'start:stop'")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids: at most one run per GPU at a time")
    p.add_argument("--jobs", type=int, default=1, help="concurrent runs without --gpus (default 1)")
    p.add_argument("--collect", action="store_true", help="with --fan-out: only merge the ranges' metrics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.runs.runner import run_notebook

    overrides = dict(args.parameter)
    if len(overrides) != len(args.parameter):
        raise UsageError("a parameter is given twice")
    if args.fan_out:
        from gpic_lab.runs.fanout import fan_out_command

        return fan_out_command(args.notebook, overrides, args.fan_out, args.gpus, args.jobs, args.force, args.collect)
    result = run_notebook(args.notebook, overrides, run_id=args.run_id, force=args.force)
    print(f"{result.status}: {result.notebook} -> {result.run_dir}" + (f" ({result.message})" if result.message else ""),
          file=sys.stderr)
    return 1 if result.status == "failed" else 0
