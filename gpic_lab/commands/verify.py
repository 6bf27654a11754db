"""`gpic-lab verify MANIFEST [--root DIR]`: check a (downloaded) copy of packed shards against its manifest."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check shards against a pack manifest (missing / size / sha256)",
                       description="One stdout line per bad shard: <file>: <missing|size-mismatch|sha256-mismatch>: "
                                   "<message>. Exit 0 all match, 1 any missing or corrupt, 2 usage error.")
    p.add_argument("manifest", metavar="MANIFEST", help="manifest.json (or the directory holding it)")
    p.add_argument("--root", default=None, help="directory holding the shards (default: the manifest's directory)")
    p.add_argument("--size-only", action="store_true", help="check presence and sizes only (no sha256)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.pack.manifest import verify

    problems, checked = verify(args.manifest, args.root, check_hash=not args.size_only)
    for problem in problems:
        print(problem.line())
    print(f"verify: {checked} shard(s) checked, {len(problems)} missing or corrupt", file=sys.stderr)
    return 1 if problems else 0
