"""`gpic-lab run NOTEBOOK [-p NAME=VALUE]... [--run-id ID] [--force]` and fan-out batch runs."""

from __future__ import annotations

import argparse
import sys

from gpic_lab.commands._options import add_progress


class _ParamAction(argparse.Action):
    """``-p NAME=VALUE`` (the spelling of every verb) or the older ``-p NAME VALUE``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        items = list(values) if isinstance(values, list) else [str(values)]
        if len(items) == 1 and "=" in items[0]:
            items = items[0].split("=", 1)
        if len(items) != 2:
            parser.error(f"{option_string} expects NAME=VALUE (or NAME VALUE), got {' '.join(items)!r}")
        getattr(namespace, self.dest).append(tuple(items))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute a notebook headlessly with strict parameters and a run record",
                       description="Writes papermill_runs/<stem>/<run-id>/ with the executed notebook (figures "
                                   "inline), a live timestamped run.log, params.json, env.json, metrics.json and "
                                   "DONE. Exit 0 done/skipped, 1 the notebook failed (executed copy and run.log kept, "
                                   "no DONE), 2 bad parameters (checked before any kernel starts; no run directory).")
    p.add_argument("notebook", help="the .ipynb to run (its jupytext .py pair is not run)")
    p.add_argument("-p", "--parameter", nargs="+", action=_ParamAction, default=[], metavar="NAME=VALUE",
                   help="a notebook parameter (repeat; `-p NAME VALUE` also works); checked against the "
                        "notebook's parameters cell")
    p.add_argument("--run-id", default=None, help="run directory name (default: hash of notebook, parameters, "
                                                  "inputs and version)")
    p.add_argument("--force", action="store_true", help="rerun even when the run is DONE")
    p.add_argument("--execution-timeout", type=float, default=None, metavar="S",
                   help="seconds one cell may run before the run fails (papermill's per-cell timeout; default: none)")
    p.add_argument("--fan-out", default=None, metavar="NAME=START:STOP:STEP",
                   help="one run per range: the str parameter NAME (shard_range) gets 'start:stop'")
    p.add_argument("--gpus", default=None, metavar="0,1,...",
                   help="comma-separated GPU ids: at most one range per GPU at a time (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--jobs", type=int, default=1, help="concurrent ranges without --gpus")
    p.add_argument("--collect", action="store_true", help="with --fan-out: only merge the ranges' metrics")
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.runs.runner import run_notebook

    overrides = dict(args.parameter)
    if len(overrides) != len(args.parameter):
        raise UsageError("a parameter is given twice")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.fan_out:
        from gpic_lab.runs.fanout import fan_out_command

        return fan_out_command(args.notebook, overrides, args.fan_out, args.gpus, args.jobs, args.force, args.collect,
                               args.execution_timeout)
    if args.collect:
        raise UsageError("--collect goes with --fan-out (it merges the metrics of the ranges of one fan-out)")
    result = run_notebook(args.notebook, overrides, run_id=args.run_id, force=args.force,
                          execution_timeout=args.execution_timeout, progress=args.progress)
    print(f"{result.status}: {result.notebook} -> {result.run_dir}" + (f" ({result.message})" if result.message else ""),
          file=sys.stderr)
    return 1 if result.status == "failed" else 0
