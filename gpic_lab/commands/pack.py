"""`gpic-lab pack INPUT... --out DIR --shards N --val K --test M --seed S`: splits, tiers, GPIC tars, manifest."""

from __future__ import annotations

import argparse
import sys

from gpic_lab.commands._options import add_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="apply stage decisions, split train/val/test, write GPIC shards + manifest",
                       description="INPUTs are source shards (tars, directories of tars, catalog parquet), stage "
                                   "directories / decisions.parquet files (a key dropped by any stage is excluded) "
                                   "and captions parquet files (caption + caption_type override the records). "
                                   "Writes OUT/{train,val,test}/gpic_*_NNNNN.tar, OUT/manifest.json, "
                                   "OUT/datasheet.{json,md}, OUT/README.md (a dataset card: datasets.load_dataset(OUT) "
                                   "loads every split). --preset gpic: GPIC's released layout; --dry-run shows a layout "
                                   "without writing. Same inputs + seed give byte-identical outputs. "
                                   "Exit 0 ok, 1 failure (unreadable shard...), 2 usage error.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="shards/dirs/catalogs, stage dirs, decisions or captions parquet")
    p.add_argument("-o", "--out", default=None, help="output directory (required unless --dry-run)")
    p.add_argument("--preset", choices=("gpic",), default=None,
                   help="gpic: GPIC's released layout (8000 train shards, val 200000 in 32, test 1000000 in 128); "
                        "any flag below overrides one value")
    p.add_argument("--dry-run", action="store_true",
                   help="print the layout (files, samples, tiers) and, with INPUTs, the plan; write nothing")
    p.add_argument("--shards", type=int, default=None,
                   help="number of train shards N (Nano/Lite/Full = first 1%%/10%%/100%%); required without --preset")
    p.add_argument("--val", type=float, default=None, help="val samples (count, or a fraction in (0,1) of the kept pool)")
    p.add_argument("--test", type=float, default=None, help="test samples (count, or a fraction in (0,1))")
    p.add_argument("--val-shards", type=int, default=None, help="number of val shards (default 1)")
    p.add_argument("--test-shards", type=int, default=None, help="number of test shards (default 1)")
    p.add_argument("--captions", nargs="*", default=[], help="captions parquet files (from `gpic-lab caption`)")
    p.add_argument("--seed", type=int, default=0, help="split/shuffle seed (default 0)")
    p.add_argument("--no-validate", action="store_true", help="skip the final `validate` of the written shards")
    p.add_argument("--workers", type=int, default=1,
                   help="processes writing output shards in parallel, one task per shard (default 1: this process); "
                        "the output is byte-identical for any value")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: a process pool on this machine; dask: a Dask cluster (see --scheduler)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address tcp://HOST:PORT (default with --engine dask: a local cluster)")
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from gpic_lab.errors import UsageError, printable
    from gpic_lab.pack.packer import pack
    from gpic_lab.pack.preset import resolve
    from gpic_lab.progress import enabled

    values = resolve(args.preset, shards=args.shards, val=args.val, test=args.test, val_shards=args.val_shards,
                     test_shards=args.test_shards)
    if args.dry_run:
        return _dry_run(args, values)
    if not args.inputs or not args.out:
        raise UsageError("INPUT... and --out DIR are required (or --dry-run to see the layout)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = pack(args.inputs, args.out, values["shards"], values["val"], values["test"], args.seed,
                        values["val_shards"], values["test_shards"], args.captions, progress=enabled(args.progress),
                        workers=args.workers, engine=args.engine, scheduler=args.scheduler)
    for w in caught:  # e.g. decisions whose keys partly match no sample
        print(f"gpic-lab pack: warning: {printable(w.message)}", file=sys.stderr)
    splits = ", ".join(f"{s} {v['samples']} in {v['shards']} shard(s)" for s, v in manifest["splits"].items())
    tiers = ", ".join(f"{t} {v['samples']} ({v['shards']} shard(s))" for t, v in manifest["tiers"].items())
    print(f"pack: {splits}; tiers: {tiers} -> {args.out}/manifest.json", file=sys.stderr)
    if args.no_validate:
        return 0
    from gpic_lab.shards.validate import validate

    problems, samples = validate([args.out], workers=1)
    for problem in problems:
        print(problem.line())
    print(f"pack: validate: {samples} sample(s), {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def _dry_run(args: argparse.Namespace, v: dict) -> int:
    """Print the layout; with inputs also the plan (samples per split and tier, exclusions). Writes nothing."""
    import json

    from gpic_lab.pack.packer import classify_inputs, make_plan
    from gpic_lab.pack.preset import layout, layout_text, plan_layout

    if not args.inputs:
        lay = plan_layout(args.preset, **v) if args.preset else layout(v["shards"], v["val"], v["test"],
                                                                       v["val_shards"], v["test_shards"])
        print(layout_text(lay))
        print(json.dumps(lay))
        return 0
    from gpic_lab.caption.store import caption_files
    from gpic_lab.pack.manifest import plan_summary

    inputs = classify_inputs(args.inputs)
    inputs.captions += caption_files(args.captions)
    plan = make_plan(inputs, v["shards"], v["val"], v["test"], args.seed, v["val_shards"], v["test_shards"])
    summary = plan_summary(plan)
    lay = layout(len(plan.shards["train"]), summary["splits"]["val"], summary["splits"]["test"],
                 len(plan.shards["val"]), len(plan.shards["test"]), summary["splits"]["train"])
    for t in lay["tiers"]:
        lay["tiers"][t]["samples"] = summary["tiers"][t]
    print(layout_text(lay))
    print(json.dumps({**lay, "plan": summary}))
    return 0
