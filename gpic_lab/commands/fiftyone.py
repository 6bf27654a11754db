"""`gpic-lab fiftyone load|list|delete`: build, refresh and manage FiftyOne datasets of GPIC subsets."""

from __future__ import annotations

import argparse
import json
import sys

from gpic_lab.commands._options import add_progress, alias
from gpic_lab.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fiftyone", help="load GPIC subsets into FiftyOne (build or refresh a dataset)")
    verbs = p.add_subparsers(dest="fo_verb", required=True, metavar="VERB")
    load = verbs.add_parser("load", help="build or refresh a persistent dataset (idempotent: matched by key)")
    load.add_argument("paths", nargs="+", metavar="PATH|CATALOG", help="shards, dirs of shards, or catalog .parquet")
    load.add_argument("--name", required=True, help="dataset name (letters, digits, '-', '_')")
    load.add_argument("--decisions", nargs="+", default=[], metavar="DIR", help="stage dirs with decisions.parquet")
    load.add_argument("--sample", type=int, default=None, metavar="N", help="seeded random subset of N samples")
    alias(load, "--limit", "sample", type=int)
    load.add_argument("--seed", type=int, default=0, help="seed of --sample")
    load.add_argument("--shard-range", dest="shards", default=None, metavar="A:B",
                      help="shards A..B-1 of the sorted shard list")
    alias(load, "--shards", "shards")
    load.add_argument("--tier", choices=("nano", "lite", "full"), default=None,
                      help="only samples of this tier (default: all)")
    load.add_argument("--dropped-only", action="store_true", help="only samples some --decisions stage dropped")
    load.add_argument("--embeddings", default=None, metavar="FILE|histogram|efficientnet",
                      help="embeddings .npz/.parquet by key, or a CPU encoder to compute them")
    load.add_argument("--brain", choices=("none", "umap", "pca", "tsne"), default="none",
                      help="with --embeddings: visualization method (plus similarity, uniqueness, near dups)")
    load.add_argument("--near-dup-threshold", type=float, default=0.2,
                      help="with --brain: embedding distance below which samples are near duplicates")
    load.add_argument("--force", action="store_true", help="delete and rebuild the dataset")
    alias(load, "--overwrite", "force", action="store_true")
    add_progress(load)
    load.set_defaults(func=run_load)
    ls = verbs.add_parser("list", help="list FiftyOne datasets")
    ls.set_defaults(func=run_list)
    rm = verbs.add_parser("delete", help="delete a dataset")
    rm.add_argument("name", help="dataset name")
    rm.set_defaults(func=run_delete)


def run_load(args: argparse.Namespace) -> int:
    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo.records import efficientnet_encoder, histogram_encoder, parse_shard_range

    if args.brain != "none" and not args.embeddings:
        raise UsageError("--brain needs --embeddings")
    dataset = fo_bridge.load_dataset(args.paths, args.name, decisions_dirs=args.decisions, sample=args.sample,
                                     seed=args.seed, shard_range=parse_shard_range(args.shards), tier=args.tier,
                                     dropped_only=args.dropped_only, overwrite=args.force, progress=args.progress)
    if args.embeddings:
        encoders = {"histogram": histogram_encoder, "efficientnet": efficientnet_encoder}
        source = encoders[args.embeddings]() if args.embeddings in encoders else args.embeddings
        n = fo_bridge.attach_embeddings(dataset, source)
        print(f"fiftyone: embeddings attached to {n} sample(s)", file=sys.stderr)
        if args.brain != "none":
            fo_bridge.compute_brain(dataset, method=args.brain, near_dup_threshold=args.near_dup_threshold)
    views = fo_bridge.save_views(dataset)
    info = fo_bridge.summary(dataset)
    info["views"] = views
    print(json.dumps(info, default=str))
    print(f"fiftyone: dataset {args.name!r} holds {info['samples']} sample(s); open it with "
          f"`gpic-lab app {args.name}`", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from gpic_lab.fo import bridge as fo_bridge

    for name in fo_bridge.list_datasets():
        print(name)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from gpic_lab.fo import bridge as fo_bridge

    if not fo_bridge.delete_dataset(args.name):
        raise UsageError(f"no dataset named {args.name!r}")
    return 0
