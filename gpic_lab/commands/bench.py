"""`gpic-lab bench NAME [--quick]`: run a benchmark; its last stdout line is one JSON object, also appended with date,
machine, commit and arguments to benchmarks/results.jsonl; a correctness mismatch exits 1 with ratio null."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import resource

from gpic_lab.benches import record
from gpic_lab.errors import UsageError

REQUIRED = record.REQUIRED
NOT_BENCHES = {"record"}  # shared machinery in gpic_lab/benches/, not a benchmark


def available() -> list[str]:
    """Names of the benchmarks in gpic_lab/benches/."""
    import gpic_lab.benches as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_") and m.name not in NOT_BENCHES)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark against its baseline (last stdout line: JSON; appended to "
                                     "benchmarks/results.jsonl or $GPIC_LAB_BENCH_RESULTS)")
    p.add_argument("name", help="benchmark name: " + ", ".join(available()))
    p.add_argument("--quick", action="store_true", help="small sizes; finishes within about a minute")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="benchmark-specific options")
    p.set_defaults(func=run)


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its waited-for children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024.0, 1)


def run(args: argparse.Namespace) -> int:
    args.name = args.name.replace("-", "_")  # `bench catalog-explore` is the module catalog_explore
    if args.name not in available():
        raise UsageError(f"unknown benchmark {args.name!r}; choose from {', '.join(available())}")
    module = importlib.import_module(f"gpic_lab.benches.{args.name}")
    from gpic_lab.commands.cli import HelpFormatter

    parser = argparse.ArgumentParser(prog=f"gpic-lab bench {args.name}", formatter_class=HelpFormatter)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    rest = [a for a in args.rest if a != "--quick"]  # --quick may come after NAME
    bench_args = parser.parse_args(rest)
    args.quick = bench_args.quick = args.quick or len(rest) != len(args.rest)
    result = dict(module.run(bench_args))
    result.setdefault("peak_rss_mb", peak_rss_mb())
    result.setdefault("quick", bool(args.quick))
    return record.finish(result, [args.name, *(["--quick"] if args.quick else []), *rest])
