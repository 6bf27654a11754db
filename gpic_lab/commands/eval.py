"""`gpic-lab eval SAMPLES --ref REF.npz [--model PATH] -o results.json`: the whole GPIC FD-DINOv2 protocol."""
from __future__ import annotations

import argparse
import json
import sys

from gpic_lab.commands._options import add_progress, alias
from gpic_lab.models.dinov2 import PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="FD-DINOv2, PRDC and MMD of generated images against reference stats",
                       description="SAMPLES: a folder of images, an ADM npz (arr_0), or an npz of dino_embeddings. "
                                   "By default images of any size, PNG or JPEG, get the protocol's own center crop + "
                                   "bicubic 256 before DINOv2 (counted in 'preprocessed'; undecodable files are "
                                   "skipped and counted); --strict requires 256x256 RGB PNGs named "
                                   "{caption_type}_{key}.png and fails on any other. Exit 0 ok, 1 invalid samples "
                                   "(--strict) or numerical failure, 2 usage error. Warns below 50,000 samples.")
    p.add_argument("samples", metavar="SAMPLES", help="folder of images, ADM npz or embeddings npz")
    p.add_argument("--ref", required=True, metavar="REF.npz", help="reference stats (e.g. official test_stats.npz)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="DINOv2 ViT-L/14: transformers dir, torch.hub dinov2_vitl14_pretrain.pth, or a Hugging Face hub "
                        "id (HF cache; downloaded when online)")
    p.add_argument("-o", "--out", default=None, metavar="results.json", help="write results JSON (atomically)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="inference precision: fp32 is the protocol's reference; fp16-autocast is ~4x faster on an "
                        "H100 with |dFD| ~0.002 (bf16 weights drift ~0.14); check with `gpic-lab bench eval`")
    p.add_argument("--threads", type=int, default=None, help="decode/preprocess threads (default: cores, max 16)")
    p.add_argument("--strict", action="store_true",
                   help="only 256x256 RGB PNGs named {caption_type}_{key}.png; any other file is an error")
    p.add_argument("--no-strict", action="store_true", help=argparse.SUPPRESS)  # the default since --strict exists
    p.add_argument("--seed", type=int, default=0, help="seed for the PRDC/MMD subsets")
    alias(p, "--dtype", "precision", choices=list(PRECISIONS))
    add_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.evaluation.evaluate import evaluate
    from gpic_lab.fsio import write_json_atomic

    res = evaluate(args.samples, args.ref, model_path=args.model, batch_size=args.batch_size, device=args.device,
                   dtype=args.precision, strict=args.strict and not args.no_strict, seed=args.seed,
                   threads=args.threads, progress=args.progress)
    for w in res["warnings"]:
        print(f"gpic-lab eval: warning: {w}", file=sys.stderr)
    if args.out:
        write_json_atomic(args.out, res)
    print(json.dumps(res))
    return 0
