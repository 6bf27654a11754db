"""`gpic-lab train --config NAME SHARDS... --out RUN [--tier T] [--steps N | --epochs N] [--global-batch 256]`:
train GPIC's JiT-T2I baseline. Multi-GPU: `torchrun --nproc-per-node 8 -m gpic_lab.commands.cli train ...`."""

from __future__ import annotations

import argparse
import json


def _floats(text: str) -> tuple[float, float]:
    parts = [float(x) for x in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("expected two comma-separated numbers, e.g. 0.9,0.95")
    return parts[0], parts[1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the JiT-T2I reference baseline on GPIC shards (resumable, DDP)",
                       description="Runs again with the same --out resume from its newest checkpoint and continue "
                                   "exactly. Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("shards", nargs="+", metavar="SHARDS", help="shard files, directories or URLs")
    p.add_argument("--config", required=True, help="tiny | base | gpic-1.1b")
    p.add_argument("-o", "--out", required=True, metavar="RUN", help="run directory (logs, checkpoints)")
    p.add_argument("--tier", choices=("nano", "lite", "full"), default=None, help="GPIC tier by shard index")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="optimizer steps")
    length.add_argument("--epochs", type=int, help="epochs over the shards (GPIC: 1)")
    p.add_argument("--global-batch", type=int, default=256, help="samples per step over all ranks (GPIC: 256)")
    p.add_argument("--micro-batch", type=int, default=None, help="per-rank chunk for gradient accumulation")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (GPIC: 1e-4)")
    p.add_argument("--betas", type=_floats, default=(0.9, 0.95), help="AdamW betas (GPIC: 0.9,0.95)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="GPIC: none")
    p.add_argument("--warmup", type=float, default=0.001, help="linear warmup as a fraction of the steps (GPIC: 0.1%%)")
    p.add_argument("--warmup-steps", type=int, default=None, help="warmup in steps (overrides --warmup)")
    p.add_argument("--ema-decay", type=float, default=0.9999,
                   help="EMA decay (GPIC does not say; 0.9999 is the third-party record of its config)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 = off (our assumption: 1.0)")
    p.add_argument("--cond-dropout", type=float, default=0.1, help="caption dropout for CFG (GPIC: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the shard order and the noise")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers per rank")
    p.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N steps (and at the end)")
    p.add_argument("--keep-ckpts", type=int, default=2, help="checkpoints kept on disk (older ones are removed)")
    p.add_argument("--log-every", type=int, default=10, help="a log row every N steps")
    p.add_argument("--text-encoder", default=None, help="hub id, directory or 'tiny' (default: the config's)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-bf16", action="store_true", help="float32 on CUDA (default: bf16 autocast)")
    p.add_argument("--log-samples", action="store_true", help="write samples/rank{R}.csv: the keys of every step")
    p.add_argument("--grad-checkpoint", action="store_true", help="recompute activations (less memory)")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from gpic_lab.baseline.train import TrainSettings, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = TrainSettings(
        config=args.config, shards=list(args.shards), out=args.out, tier=args.tier, steps=args.steps,
        epochs=args.epochs, global_batch=args.global_batch, micro_batch=args.micro_batch, lr=args.lr,
        betas=tuple(args.betas), weight_decay=args.weight_decay, warmup=args.warmup, warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay, grad_clip=args.grad_clip or None, cond_dropout=args.cond_dropout, seed=args.seed,
        workers=args.workers, ckpt_every=args.ckpt_every, keep_ckpts=args.keep_ckpts, log_every=args.log_every,
        text_encoder=args.text_encoder, device=args.device, bf16=not args.no_bf16, log_samples=args.log_samples,
        grad_checkpoint=args.grad_checkpoint, compile=args.compile, threads=args.threads)
    summary = train(settings)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(summary))
    return 0
