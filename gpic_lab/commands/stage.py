"""`gpic-lab stage NAME PATH... --out DIR [--engine local|dask] [--scheduler ADDR] [-p KEY=VALUE]...`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.engine.stages import REGISTRY

    p = sub.add_parser("stage", help="run a per-shard filter stage (resumable, local or Dask)",
                       description="Writes DIR/decisions.parquet, counts.csv (reason x license family x source), "
                                   "reasons.csv, summary.json and one done/<shard>.done marker per shard; a rerun "
                                   "skips finished shards. Exit 0 on success, 1 on failure, 2 on bad usage. "
                                   f"Stages: {', '.join(sorted(REGISTRY))} (or module:function).")
    p.add_argument("name", metavar="NAME", help="stage name or module:function")
    p.add_argument("paths", nargs="*", metavar="PATH", help="tar shards or directories of them")
    p.add_argument("--out", default=None, help="output directory of this stage (required unless --list-params)")
    p.add_argument("--list-params", action="store_true",
                   help="print the stage's parameters (name, type, default, range, help) and exit")
    p.add_argument("--engine", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://HOST:PORT (default: a "
                                                     "LocalCluster on 127.0.0.1)")
    p.add_argument("--workers", type=int, default=None, help="processes / LocalCluster workers (default: cores)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="stage parameter; VALUE is read as JSON when it parses (1, 0.5, true, [..]), else text; "
                        "checked against the stage's declared type and range (see --list-params)")
    p.add_argument("--force", action="store_true", help="recompute shards that already have a marker")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; values parse as JSON when they can, else stay strings."""
    from gpic_lab.errors import UsageError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-p {item!r}: expected KEY=VALUE")
        if key in out:
            raise UsageError(f"-p {key}: given twice")
        try:
            out[key] = json.loads(value)
        except RecursionError:
            raise UsageError(f"-p {key}: value nested too deeply") from None
        except ValueError:  # not JSON (JSONDecodeError), or an integer past Python's digit limit
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from gpic_lab.engine.params import specs_of, table
    from gpic_lab.engine.stages import resolve, run_stage
    from gpic_lab.errors import UsageError

    if args.list_params:
        print(table(args.name, specs_of(resolve(args.name))))
        return 0
    if not args.paths or not args.out:
        raise UsageError("give the shards (PATH...) and --out DIR (or --list-params)")
    from gpic_lab.commands._signals import sigterm_as_interrupt

    with sigterm_as_interrupt():  # `kill` stops the workers too (see engine.backends)
        summary = run_stage(args.name, args.paths, args.out, parse_params(args.param), engine=args.engine,
                            scheduler=args.scheduler, workers=args.workers, force=args.force,
                            progress=not args.no_progress and sys.stderr.isatty())
    width = max([len(r) for r in summary["reasons"]] + [6])
    print(f"{'reason':<{width}}  {'count':>8}  {'share':>7}")
    for reason, count in summary["reasons"].items():
        print(f"{reason:<{width}}  {count:>8}  {count / max(summary['samples'], 1):>7.2%}")
    print(f"stage {summary['stage']}: {summary['shards']} shard(s) ({summary['computed']} computed, "
          f"{summary['skipped']} already done), {summary['samples']} sample(s), {summary['kept']} kept, "
          f"{summary['dropped']} dropped -> {args.out}/decisions.parquet (table: {args.out}/reasons.csv)",
          file=sys.stderr)
    return 0
