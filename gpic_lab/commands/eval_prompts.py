"""`gpic-lab eval-prompts TEST_SHARDS... --ref test_stats.npz -o eval_50k.jsonl`: the fixed eval captions."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-prompts", help="the fixed eval captions (key, caption, caption_type) in npz key order",
                       description="Reads only the JSON members of the shards. Exit 0 ok, 1 keys missing (unless "
                                   "--allow-missing), 2 usage error.")
    p.add_argument("shards", nargs="+", metavar="TEST_SHARDS", help="the test shards (dirs, brace ranges, globs, URLs)")
    p.add_argument("--ref", required=True, metavar="test_stats.npz", help="stats npz holding the key array")
    p.add_argument("-o", "--out", required=True, metavar="eval_50k.jsonl", help="JSON lines to write")
    p.add_argument("--allow-missing", action="store_true", help="write the captions found even if keys are missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.evaluation.eval_prompts import write_eval_prompts

    print(json.dumps(write_eval_prompts(args.shards, args.ref, args.out, allow_missing=args.allow_missing)))
    return 0
