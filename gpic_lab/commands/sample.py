"""`gpic-lab sample build --out DIR`: (re)build the bundled sample corpus from images inside installed wheels."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="build the bundled sample corpus (data/sample/)")
    verbs = p.add_subparsers(dest="sample_verb", required=True)
    build = verbs.add_parser("build", help="write clean shards, raw/ plants, captions.json, ground_truth.csv")
    build.add_argument("-o", "--out", default="data/sample", help="output directory (default: data/sample)")
    build.set_defaults(func=run)
    broken = verbs.add_parser("broken", help="write planted tar/format problems for `validate` (+ expected.csv)")
    broken.add_argument("-o", "--out", default="data/sample/broken", help="output directory (default: data/sample/broken)")
    broken.set_defaults(func=run_broken)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.sample.corpus import build

    counts = build(args.out)
    for rel, n in counts.items():
        print(f"{n:4d}  {rel}")
    print(f"{sum(counts.values())} samples in {len(counts)} shards under {args.out}")
    return 0


def run_broken(args: argparse.Namespace) -> int:
    from gpic_lab.sample.broken import build_broken

    expected = build_broken(args.out)
    print(f"{len(expected)} planted problems in {len({e['shard'] for e in expected})} shards under {args.out}")
    return 0
