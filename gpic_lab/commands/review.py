"""`gpic-lab review export NAME --out DIR`: FiftyOne tags (and review-table verdicts) -> a decisions table for pack."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="turn review tags and verdicts into decisions that pack applies")
    verbs = p.add_subparsers(dest="review_verb", required=True, metavar="VERB")
    ex = verbs.add_parser("export", help="write DIR/decisions.parquet (stage review) from a dataset's sample tags",
                          description="Samples tagged with a review tag in the FiftyOne App become rows of "
                                      "DIR/decisions.parquet: drop tags keep=False with reason review:<tag>, "
                                      "recaption tags keep=False with review_action=recaption (for caption --redo), "
                                      "keep tags keep=True. Also writes counts.csv, reasons.csv, summary.json.")
    ex.add_argument("name", metavar="NAME", help="FiftyOne dataset whose sample tags to export ('-': none, only "
                                                 "--verdicts)")
    ex.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (pass it to `gpic-lab pack`)")
    ex.add_argument("--tags", default=None, metavar="TAG=ACTION,...",
                    help="review tags and their action (drop|recaption|keep); default "
                         "reject=drop,recaption=recaption,keep=keep")
    ex.add_argument("--verdicts", nargs="+", default=[], metavar="FILE",
                    help="review-table verdict files (JSON, e.g. notebook 22's review.json) to add")
    ex.add_argument("--reviewer", default=None, help="who tagged in the App (FiftyOne records no user; default: "
                                                     "your login name)")
    ex.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpic_lab.audits.review import verdict_marks
    from gpic_lab.engine.review import export_marks, parse_tags
    from gpic_lab.errors import UsageError

    tags = parse_tags(args.tags)
    if args.name == "-" and not args.verdicts:
        raise UsageError("nothing to export: give a dataset NAME or --verdicts FILE")
    marks = []
    if args.name != "-":
        from gpic_lab.fo import review as fo_review

        marks += fo_review.tag_marks(fo_review.open_existing(args.name), tags, args.reviewer)
    for path in args.verdicts:
        if not Path(path).is_file():
            raise UsageError(f"--verdicts {path}: no such file")
        marks += verdict_marks(path)
    summary = export_marks(marks, args.out, tags, {"dataset": None if args.name == "-" else args.name,
                                                   "verdicts": [str(Path(p).resolve()) for p in args.verdicts]})
    print(f"review: {summary['samples']} reviewed key(s): {summary['dropped'] - summary['recaption']} dropped, "
          f"{summary['recaption']} to recaption, {summary['kept']} kept -> {args.out}/decisions.parquet",
          file=sys.stderr)
    print(json.dumps(summary, sort_keys=True))
    return 0
