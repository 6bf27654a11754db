"""`gpic-lab caption PATH... --out DIR --model PATH|tiny [--backend transformers|vllm] [--levels auto|all] ...`."""

from __future__ import annotations

import argparse
import json
import sys

from gpic_lab.commands._options import add_progress, add_shard_slice, alias


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption shards with Qwen3-VL at GPIC's four levels (resumable)",
                       description="Writes OUT/<shard>.captions.parquet (key, caption_type, caption, prompt_version, "
                                   "model, sampling, n_tokens, truncated, model_warning...) and OUT/done/<shard>.done "
                                   "per shard; a rerun skips finished shards. --model tiny builds/uses a tiny random "
                                   "Qwen3-VL under the state dir (placeholder captions, flagged in model_warning). "
                                   "Exit 0 ok, 1 failure, 2 usage error.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="tar shards, directories, brace ranges (x_{00000..00099}.tar), globs or URLs")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--model", required=True, help="model dir, Hugging Face hub id (Qwen/Qwen3-VL-4B-Instruct: from "
                                                  "the HF cache, downloaded when online), or 'tiny'")
    p.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                   help="inference engine (vllm: GPU only, optional install)")
    p.add_argument("--levels", choices=("auto", "all"), default="auto",
                   help="auto: one level per image from a seeded key hash (1/45/45/9 %%); all: four levels (audits)")
    p.add_argument("--seed", type=int, default=0, help="seed of the caption-type hash (default 0)")
    p.add_argument("--batch-size", type=int, default=8, help="images per generate call (halved on CUDA OOM)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="one budget for every level (default per level: tag 48, short 80, medium 160, long 512)")
    p.add_argument("--min-pixels", type=int, default=None, help="processor min pixels (default: the model's)")
    p.add_argument("--max-pixels", type=int, default=None, help="processor max pixels; images are also resized "
                                                                "to this bound while decoding")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default cuda when available)")
    p.add_argument("--threads", type=int, default=2, help="background decode/resize threads")
    alias(p, "--workers", "threads", type=int)
    p.add_argument("--on-corrupt", choices=("raise", "skip"), default="raise",
                   help="raise: stop at the first unreadable sample (default); skip: caption past them, counted by code")
    p.add_argument("--force", action="store_true", help="recaption shards that already have a marker")
    add_progress(p)
    add_shard_slice(p)
    p.add_argument("--redo", default=None, metavar="QC_DIR",
                   help="second pass: recaption only the keys caption QC failed in QC_DIR (the level's prompt plus a "
                        "correction hint, --redo-budget x the token budget), write OUT/<shard>.redo.captions.parquet, "
                        "QC again into QC_DIR (first pass kept in QC_DIR/first_pass/, counts in redo_counts.csv)")
    p.add_argument("--redo-budget", type=float, default=2.0, help="token budget factor of the second pass (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.caption.captioner import caption_shards, make_captioner
    from gpic_lab.caption.levels import LEVELS
    from gpic_lab.commands._options import is_sliced, slice_note, sliced_shards
    from gpic_lab.errors import UsageError

    shards = sliced_shards(args, args.paths)  # bad paths fail before the model loads
    if is_sliced(args):
        print(f"caption: {slice_note(args, shards)}", file=sys.stderr)
    if not shards:
        print(json.dumps({"shards": 0, "captions": 0, "out": str(args.out)}))
        return 0
    for name in ("batch_size", "max_new_tokens", "min_pixels", "max_pixels", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    budgets = {lv: args.max_new_tokens for lv in LEVELS} if args.max_new_tokens else None
    if args.redo:
        from gpic_lab.caption.redo import budgets as redo_budgets
        from gpic_lab.caption.redo import failed

        failed(args.redo)  # a bad QC_DIR fails before the model loads
        budgets = redo_budgets(budgets, args.redo_budget)
    kwargs = {"min_pixels": args.min_pixels, "max_pixels": args.max_pixels, "max_new_tokens": budgets}
    if args.backend == "transformers":
        kwargs["device"] = args.device
    captioner = make_captioner(args.model, args.backend, **kwargs)
    if captioner.model_warning:
        print(f"caption: WARNING: {captioner.model_warning}", file=sys.stderr)
    if args.redo:
        return _redo(args, captioner)
    stats = caption_shards(shards, args.out, captioner, levels=args.levels, batch_size=args.batch_size,
                           seed=args.seed, workers=args.threads, max_pixels=args.max_pixels,
                           progress=args.progress, force=args.force, on_corrupt=args.on_corrupt)
    rate = stats["captions"] / stats["seconds"] if stats["seconds"] else 0.0
    print(json.dumps({**stats, "images_per_s": round(rate, 3), "out": str(args.out)}))
    return 0


def _redo(args: argparse.Namespace, captioner: object) -> int:
    from gpic_lab.caption.redo import redo

    stats = redo(args.paths, args.out, captioner, args.redo, seed=args.seed, batch_size=args.batch_size,
                 workers=args.threads, max_pixels=args.max_pixels, on_corrupt=args.on_corrupt)
    table = stats.pop("before_after")
    print(table.to_string(index=False), file=sys.stderr)
    print(json.dumps({**stats, "before_after": table.set_index("reason").to_dict("index"), "qc_dir": str(args.redo)}))
    return 0
