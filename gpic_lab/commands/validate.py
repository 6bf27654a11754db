"""`gpic-lab validate PATH...`: deep check of GPIC shards. Exit 0 clean, 1 problems found, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.shards.validate import DEFAULT_MAX_PIXELS

    p = sub.add_parser("validate", help="deep-check shards (every member, record and image)",
                       description="One stdout line per problem: <shard>:<member>: <code>: <message>. "
                                   "Exit 0 when all valid, 1 when problems are found, 2 on usage errors.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="tar shards or directories of them")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images above this many pixels before decoding (default {DEFAULT_MAX_PIXELS})")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--no-caption-required", action="store_true",
                   help="accept empty caption/caption_type (collected, not yet captioned shards)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.shards.reader import list_shards
    from gpic_lab.shards.validate import validate

    if args.max_pixels <= 0:
        raise UsageError(f"--max-pixels must be positive, got {args.max_pixels}")
    shards = list_shards(args.paths)  # UsageError (exit 2) for a missing path
    problems, samples = validate(shards, args.max_pixels, args.workers, not args.no_caption_required,
                                 progress=not args.no_progress and sys.stderr.isatty())
    for problem in problems:
        print(problem.line())
    counts = Counter(p.code for p in problems)
    summary = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items())) or "no problems"
    print(f"validate: {len(shards)} shard(s), {samples} sample(s) read; {len(problems)} problem(s) ({summary})",
          file=sys.stderr)
    return 1 if problems else 0
