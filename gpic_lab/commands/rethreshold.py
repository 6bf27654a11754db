"""`gpic-lab rethreshold STAGE_DIR --out DIR -p NAME=VALUE...`: new decisions from stored scores, no recompute."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.engine.rethreshold import RULES

    p = sub.add_parser("rethreshold", help="re-decide a stage's table for new thresholds from its stored scores",
                       description="Reads STAGE_DIR/decisions.parquet and the params the stage ran with, writes "
                                   "DIR/decisions.parquet (+ counts.csv, reasons.csv, summary.json with the params "
                                   f"used and what changed). Stages: {', '.join(sorted(RULES))}.")
    p.add_argument("stage_dir", metavar="STAGE_DIR", help="a stage output directory")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="directory of the new decisions table")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a threshold to change (VALUE read as JSON when it parses); the others stay")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.commands.stage import parse_params
    from gpic_lab.engine.rethreshold import rethreshold

    summary = rethreshold(args.stage_dir, args.out, parse_params(args.param))
    info = summary["rethreshold"]
    print(f"rethreshold {summary['stage']}: {info['changed']} decision(s) changed ({info['newly_dropped']} newly "
          f"dropped, {info['newly_kept']} newly kept), {info['undecided']} undecided by the stored scores -> "
          f"{args.out}/decisions.parquet", file=sys.stderr)
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
