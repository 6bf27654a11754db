#!/usr/bin/env python3
"""Write the README's benchmark table from benchmarks/results.jsonl (between the <!-- BENCHES --> markers).

Usage: .venv/bin/python scripts/bench_table.py [--results FILE] [--readme FILE] [--check]
--check writes nothing and exits 1 when the README's table is not the one the results file gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's gpic_lab, also when run without an editable install


def main(argv: list[str] | None = None) -> int:
    from gpic_lab.benches import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.jsonl",
                        help="results file (default: benchmarks/results.jsonl)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README to update (default: README.md)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the table is out of date")
    args = parser.parse_args(argv)
    rows = record.read_results(args.results)
    same = record.update_readme(args.readme, rows, check=args.check)
    if args.check and not same:
        print(f"{args.readme}: benchmark table out of date; run scripts/bench_table.py", file=sys.stderr)
        return 1
    print(f"{args.readme}: table of {len(rows)} results {'unchanged' if same else 'written'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
