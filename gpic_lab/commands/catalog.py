"""`gpic-lab catalog PATH... -o OUT.parquet [--on-error fail|quarantine] [--check-images]`."""

from __future__ import annotations

import argparse
import sys

from gpic_lab.commands._options import add_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="metadata-only scan of shards into one Parquet table",
                       description="fail (default): exit 1 and leave no OUT when any problem is found. "
                                   "quarantine: exit 0; OUT holds every valid sample and OUT-stem.quarantine.parquet "
                                   "every problem (shard, member, key, code, message).")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="tar shards, directories, brace ranges (x_{00000..00099}.tar), globs or URLs")
    p.add_argument("-o", "--out", required=True, help="output .parquet")
    p.add_argument("--on-error", choices=("fail", "quarantine"), default="fail",
                   help="fail: no output on any problem; quarantine: problems to OUT.quarantine.parquet")
    p.add_argument("--check-images", action="store_true", help="also decode every image (slower)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--no-caption-required", action="store_true",
                   help="accept empty caption/caption_type (collected, not yet captioned shards)")
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.progress import enabled
    from gpic_lab.shards.catalog import catalog_or_fail, quarantine_path

    result = catalog_or_fail(args.paths, args.out, on_error=args.on_error, check_images=args.check_images,
                             workers=args.workers, progress=enabled(args.progress),
                             require_caption=not args.no_caption_required)
    for problem in result["problems"]:
        print(problem.line())
    if not result["written"]:
        for stale in result.get("removed", []):
            print(f"catalog: removed {stale} of an earlier run", file=sys.stderr)
        print(f"catalog: {len(result['problems'])} problem(s) in {result['shards']} shard(s); nothing written "
              f"(use --on-error quarantine to keep the valid samples)", file=sys.stderr)
        return 1
    extra = f", {len(result['problems'])} quarantined in {quarantine_path(args.out)}" if args.on_error == "quarantine" else ""
    print(f"catalog: {result['rows']} rows from {result['shards']} shard(s) -> {args.out}{extra}", file=sys.stderr)
    return 0
