"""`gpic-lab fd A.npz B.npz`: Fréchet distance between two stats files; prints JSON {fd, fd_mu, fd_sigma}."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fd", help="Fréchet distance between two npz files (dino_mu+dino_sigma or dino_embeddings)",
                       description="Prints one JSON line: fd, fd_mu, fd_sigma, n_a, n_b (dgm-eval numerics). "
                                   "Exit 0 ok, 1 numerical failure, 2 unreadable/mismatched inputs.")
    p.add_argument("a", metavar="A.npz", help="statistics (dino_mu, dino_sigma) or embeddings file")
    p.add_argument("b", metavar="B.npz", help="the other statistics or embeddings file")
    p.add_argument("--eps", type=float, default=1e-6, help="diagonal offset when sqrtm is not finite (default 1e-6)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.evaluation.fd import frechet_distance
    from gpic_lab.evaluation.refstats import read_stats

    a, b = read_stats(args.a), read_stats(args.b)
    if a["mu"].shape != b["mu"].shape:
        raise UsageError(f"{args.a} has dim {a['mu'].shape[0]} but {args.b} has dim {b['mu'].shape[0]}")
    res = frechet_distance(a["mu"], a["sigma"], b["mu"], b["sigma"], eps=args.eps)
    print(json.dumps({**res, "n_a": a["n"], "n_b": b["n"], "a": args.a, "b": args.b}))
    return 0
