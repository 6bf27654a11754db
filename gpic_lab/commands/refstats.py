"""`gpic-lab refstats SHARDS... --model PATH --out DIR`: reference statistics (GPIC npz layout) from shards."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refstats", help="build FD-DINOv2 reference stats from shards (GPIC-256 preprocessing)",
                       description="Writes <out>/gpic-<split>_n<N>_<model>_<preprocess>_fp32.npz (dino_mu, "
                                   "dino_sigma, dino_embeddings, key, tar_idx) plus a .json provenance sidecar. "
                                   "Refuses to overwrite. Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("shards", nargs="+", metavar="SHARDS", help="tar shards or directories of them (with --merge: "
                   "partial .npz files)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="DINOv2 weights (transformers dir or hub .pth); 'tiny' builds the random placeholder")
    p.add_argument("--out", required=True, metavar="DIR_OR_NPZ")
    p.add_argument("--split", default="test", help="name used in the file name (default test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-embeddings", action="store_true", help="store only mu/sigma (no PRDC/MMD later)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many samples")
    p.add_argument("--partial", action="store_true",
                   help="write mergeable partial stats (n, sum, outer) for these shards, e.g. one job per worker")
    p.add_argument("--merge", action="store_true", help="merge partial files (positional args) into one stats file")
    p.add_argument("--max-embeddings", type=int, default=None, metavar="N",
                   help="store a seeded uniform sample of N embeddings/keys (GPIC: 50000); mu/sigma use every image")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedding sample (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.evaluation.refstats import build_refstats, merge_partials
    from gpic_lab.models.dinov2 import load_dinov2, model_tag, resolve_model

    if args.merge:
        print(json.dumps(merge_partials(args.shards, args.out, split=args.split, max_embeddings=args.max_embeddings,
                                        seed=args.seed)))
        return 0
    if args.model is None:
        raise UsageError("--model PATH is required (weights dir, hub .pth, or 'tiny')")
    path = resolve_model(args.model)
    model = load_dinov2(path, device=args.device)
    res = build_refstats(args.shards, model, args.out, split=args.split, model_tag=model_tag(path),
                         batch_size=args.batch_size, threads=args.threads, keep_embeddings=not args.no_embeddings,
                         limit=args.limit, partial=args.partial, max_embeddings=args.max_embeddings, seed=args.seed)
    print(json.dumps(res))
    return 0
