"""`gpic-lab refstats SHARDS... --model PATH --out DIR`: reference statistics (GPIC npz layout) from shards."""
from __future__ import annotations

import argparse
import json
import sys

from gpic_lab.commands._options import add_progress, add_shard_slice


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refstats", help="build FD-DINOv2 reference stats from shards (GPIC-256 preprocessing)",
                       description="Writes <out>/gpic-<split>_n<N>_<model>_<preprocess>_fp32.npz (dino_mu, "
                                   "dino_sigma, dino_embeddings, key, tar_idx) plus a .json provenance sidecar. "
                                   "Refuses to overwrite. Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("shards", nargs="+", metavar="SHARDS",
                   help="tar shards, directories, brace ranges, globs or URLs (with --merge: partial .npz files or "
                        "directories holding partial-*.npz)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="DINOv2 weights: transformers dir, hub .pth, Hugging Face hub id (facebook/dinov2-large: "
                        "from the HF cache, downloaded when online), or 'tiny' (random placeholder)")
    p.add_argument("-o", "--out", required=True, metavar="DIR_OR_NPZ", help="output directory (file named by the "
                                                                      "configuration) or .npz path")
    p.add_argument("--split", default="test", help="name used in the file name")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="decode/preprocess threads (default: min(16, cores))")
    p.add_argument("--no-embeddings", action="store_true", help="store only mu/sigma (no PRDC/MMD later)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many samples")
    p.add_argument("--partial", action="store_true",
                   help="write mergeable partial stats (n, sum, outer) for these shards, e.g. one job per worker")
    p.add_argument("--merge", action="store_true", help="merge partial files (positional args) into one stats file")
    p.add_argument("--max-embeddings", type=int, default=None, metavar="N",
                   help="store a seeded uniform sample of N embeddings/keys (GPIC: 50000); mu/sigma use every image")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedding sample")
    add_progress(p)
    add_shard_slice(p, "shards (writes a partial file, implies --partial)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.commands._options import is_sliced, slice_note, sliced_shards
    from gpic_lab.errors import UsageError
    from gpic_lab.evaluation.refparts import partial_files
    from gpic_lab.evaluation.refstats import build_refstats, merge_partials
    from gpic_lab.models.dinov2 import load_dinov2, model_tag, resolve_model

    if args.merge:
        if is_sliced(args):
            raise UsageError("--merge takes every partial file: no --shard-range/--rank")
        print(json.dumps(merge_partials(partial_files(args.shards), args.out, split=args.split,
                                        max_embeddings=args.max_embeddings, seed=args.seed)))
        return 0
    if args.model is None:
        raise UsageError("--model PATH is required (weights dir, hub .pth, hub id, or 'tiny')")
    shards = sliced_shards(args, args.shards) if is_sliced(args) else args.shards
    if is_sliced(args):
        print(f"refstats: {slice_note(args, shards)} -> a partial file", file=sys.stderr)
        if not shards:
            print(json.dumps({"path": None, "n": 0}))
            return 0
    path = resolve_model(args.model)
    model = load_dinov2(path, device=args.device)
    res = build_refstats(shards, model, args.out, split=args.split, model_tag=model_tag(path),
                         batch_size=args.batch_size, threads=args.threads, keep_embeddings=not args.no_embeddings,
                         limit=args.limit, partial=args.partial or is_sliced(args), max_embeddings=args.max_embeddings,
                         seed=args.seed, progress=args.progress)
    print(json.dumps(res))
    return 0
