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
                                   "OUT/datasheet.{json,md}. Same inputs + seed give byte-identical outputs. "
                                   "Exit 0 ok, 1 failure (unreadable shard...), 2 usage error.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="shards/dirs/catalogs, stage dirs, decisions or captions parquet")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--shards", type=int, required=True, help="number of train shards N (Nano/Lite/Full = first 1%%/10%%/100%%)")
    p.add_argument("--val", type=float, default=0.0, help="val samples (count, or a fraction in (0,1) of the kept pool)")
    p.add_argument("--test", type=float, default=0.0, help="test samples (count, or a fraction in (0,1))")
    p.add_argument("--val-shards", type=int, default=1, help="number of val shards (default 1)")
    p.add_argument("--test-shards", type=int, default=1, help="number of test shards (default 1)")
    p.add_argument("--captions", nargs="*", default=[], help="captions parquet files (from `gpic-lab caption`)")
    p.add_argument("--seed", type=int, default=0, help="split/shuffle seed (default 0)")
    p.add_argument("--no-validate", action="store_true", help="skip the final `validate` of the written shards")
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from gpic_lab.errors import printable
    from gpic_lab.pack.packer import pack
    from gpic_lab.progress import enabled

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = pack(args.inputs, args.out, args.shards, args.val, args.test, args.seed, args.val_shards,
                        args.test_shards, args.captions, progress=enabled(args.progress))
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
