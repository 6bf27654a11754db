"""`gpic-lab generate --ckpt RUN --prompts eval_50k.jsonl --cfg 1.75,4.0,6.25 --steps 50 --out DIR`: sample the
baseline for `gpic-lab eval` (DIR/cfg_<w>/{caption_type}_{key}.png). Several GPUs: `--rank R --world-size W` per
process, or `torchrun --nproc-per-node 8 -m gpic_lab.commands.cli generate ...` (ranks from the environment)."""

from __future__ import annotations

import argparse
import json
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample the baseline for the eval captions at several CFG scales",
                       description="Euler sampler with classifier-free guidance, seeded per prompt key, batched, "
                                   "resumable (valid existing PNGs are skipped). Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("--ckpt", required=True, metavar="RUN", help="run directory (newest checkpoint) or a .pt file")
    p.add_argument("--prompts", required=True, metavar="PROMPTS.jsonl", help="what `gpic-lab eval-prompts` writes")
    p.add_argument("--cfg", default="1.75,4.0,6.25", help="guidance scales, comma-separated (GPIC: 1.75,4.0,6.25)")
    p.add_argument("--steps", type=int, default=50, help="Euler steps (GPIC: 50)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output root: one cfg_<scale>/ folder of PNGs per guidance scale")
    p.add_argument("--batch", type=int, default=32, help="prompts per batch")
    p.add_argument("--seed", type=int, default=0, help="base seed; each prompt's noise is seeded by it and the prompt key")
    p.add_argument("--shard-range", default=None, metavar="A:B", help="only prompts [A, B) of the list")
    p.add_argument("--rank", type=int, default=None, help="this process's share (default: $RANK or 0)")
    p.add_argument("--world-size", type=int, default=None, help="number of shares (default: $WORLD_SIZE or 1)")
    p.add_argument("--weights", choices=("ema", "live"), default="ema", help="sample with the EMA or the live weights")
    p.add_argument("--text-encoder", default=None, help="override the checkpoint's text encoder (hub id, dir, tiny)")
    p.add_argument("--device", default=None,
                   help="default: cuda:$LOCAL_RANK (else cuda:RANK mod GPUs) when available, else cpu")
    p.add_argument("--no-bf16", action="store_true", help="float32 on CUDA")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from gpic_lab.baseline.generate import generate, parse_cfgs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rank = args.rank if args.rank is not None else int(os.environ.get("RANK", "0"))
    world = args.world_size if args.world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if device is None and torch.cuda.is_available():  # torchrun's LOCAL_RANK, else one GPU per --rank
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank % torch.cuda.device_count()))}"
    if args.threads:
        torch.set_num_threads(args.threads)
    res = generate(args.ckpt, args.prompts, parse_cfgs(args.cfg), args.out, steps=args.steps, batch=args.batch,
                   seed=args.seed, shard_range=args.shard_range, rank=rank, world=world, weights=args.weights,
                   device=device, text_encoder=args.text_encoder, bf16=not args.no_bf16, limit=args.limit)
    res.pop("settings", None)
    print(json.dumps(res))
    return 0
