"""`gpic-lab validate PATH...`: deep check of GPIC shards. Exit 0 clean, 1 problems found, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from gpic_lab.commands._options import add_progress, alias


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.shards.validate import DEFAULT_MAX_PIXELS

    p = sub.add_parser("validate", help="deep-check shards (every member, record and image)",
                       description="One stdout line per problem: <shard>:<member>: <code>: <message>. "
                                   "Exit 0 when all valid, 1 when problems are found, 2 on usage errors.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="tar shards, directories, brace ranges (x_{00000..00099}.tar), globs or URLs")
    p.add_argument("--pixel-limit", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images above this many pixels before decoding (default {DEFAULT_MAX_PIXELS})")
    alias(p, "--max-pixels", "pixel_limit", type=int)
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--no-caption-required", action="store_true",
                   help="accept empty caption/caption_type (collected, not yet captioned shards)")
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.progress import enabled
    from gpic_lab.shards.reader import list_shards
    from gpic_lab.shards.validate import validate

    if args.pixel_limit <= 0:
        raise UsageError(f"--pixel-limit (old spelling --max-pixels) must be positive, got {args.pixel_limit}")
    shards = list_shards(args.paths)  # UsageError (exit 2) for a missing path
    problems, samples = validate(shards, args.pixel_limit, args.workers, not args.no_caption_required,
                                 progress=enabled(args.progress))
    for problem in problems:
        print(problem.line())
    counts = Counter(p.code for p in problems)
    summary = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items())) or "no problems"
    print(f"validate: {len(shards)} shard(s), {samples} sample(s) read; {len(problems)} problem(s) ({summary})",
          file=sys.stderr)
    return 1 if problems else 0
