"""`gpic-lab stage NAME PATH... --out DIR [--engine local|dask] [--scheduler ADDR] [-p KEY=VALUE]...`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpic_lab.commands._options import add_progress, add_shard_slice


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.engine.stages import REGISTRY

    p = sub.add_parser("stage", help="run a per-shard filter stage (resumable, local or Dask)",
                       description="Writes DIR/decisions.parquet, counts.csv (reason x license family x source), "
                                   "reasons.csv, summary.json and one done/<shard>.done marker per shard; a rerun "
                                   "skips finished shards. Exit 0 on success, 1 on failure, 2 on bad usage. "
                                   f"Stages: {', '.join(sorted(REGISTRY))} (or module:function).")
    p.add_argument("name", metavar="NAME", help="stage name or module:function")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="tar shards, directories, brace ranges (x_{00000..00099}.tar), globs or URLs")
    p.add_argument("-o", "--out", default=None, help="output directory of this stage (required unless --list-params)")
    p.add_argument("--list-params", action="store_true",
                   help="print the stage's parameters (name, type, default, range, help) and exit")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: a process pool on this machine; dask: a Dask cluster (see --scheduler)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://HOST:PORT (default: a "
                                                     "LocalCluster on 127.0.0.1)")
    p.add_argument("--workers", type=int, default=None, help="processes / LocalCluster workers (default: cores)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="stage parameter; VALUE is read as JSON when it parses (1, 0.5, true, [..]), else text; "
                        "checked against the stage's declared type and range (see --list-params)")
    p.add_argument("--force", action="store_true", help="recompute shards that already have a marker")
    add_progress(p)
    add_shard_slice(p, "the shards")
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
    from gpic_lab.commands._options import is_sliced, slice_note, sliced_shards
    from gpic_lab.commands._signals import sigterm_as_interrupt
    from gpic_lab.engine.params import specs_of, table
    from gpic_lab.engine.stages import resolve, run_stage
    from gpic_lab.errors import UsageError

    if args.list_params:
        print(table(args.name, specs_of(resolve(args.name))))
        return 0
    if not args.paths or not args.out:
        raise UsageError("give the shards (PATH...) and --out DIR (or --list-params)")
    params = parse_params(args.param)
    shards = sliced_shards(args, args.paths) if is_sliced(args) else args.paths
    if is_sliced(args):
        print(f"stage {args.name}: {slice_note(args, shards)}", file=sys.stderr)
    with sigterm_as_interrupt():  # `kill` stops the workers too (see engine.backends)
        summary = run_stage(args.name, shards, args.out, params, engine=args.engine, scheduler=args.scheduler,
                            workers=args.workers, force=args.force, progress=args.progress,
                            merge_with=args.paths if is_sliced(args) else None)
    width = max([len(r) for r in summary["reasons"]] + [6])
    print(f"{'reason':<{width}}  {'count':>8}  {'share':>7}")
    for reason, count in summary["reasons"].items():
        print(f"{reason:<{width}}  {count:>8}  {count / max(summary['samples'], 1):>7.2%}")
    print(f"stage {summary['stage']}: {summary['shards']} shard(s) ({summary['computed']} computed, "
          f"{summary['skipped']} already done), {summary['samples']} sample(s), {summary['kept']} kept, "
          f"{summary['dropped']} dropped -> {args.out}/decisions.parquet (table: {args.out}/reasons.csv)",
          file=sys.stderr)
    if "shards_in_list" in summary:
        print(f"stage {summary['stage']}: decisions.parquet holds the {summary['shards']} of "
              f"{summary['shards_in_list']} shard(s) finished so far", file=sys.stderr)
    return 0
