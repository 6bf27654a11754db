"""`gpic-lab bench dedup [--quick] [--source both|sscd|synthetic] [--copies K] [--n N] [--scale-n N] [--nprobe K]`:
k-NN + graph + rule, ours against exact brute force.

Vectors (``--source``, default ``both``: each set is compared on its own, and each must meet the recall goal):
- ``sscd``: real SSCD embeddings (the ``sscd`` encoder: sscd_disc_mixup int8 ONNX) of the real and synthetic images of
  the sample corpus plus ``--copies`` generated copies of each (``dedup.copies``: resize, JPEG, crop, brightness,
  contrast, PNG, blur), embedded once and cached under the state dir: clustered like real near-duplicates (every
  image with its copies), the hard case for cell-based joins; small, so its timings say little;
- ``synthetic``: ``--n`` random unit vectors with planted near-duplicate clusters (``knn.planted_embeddings``):
  isotropic, the easy case for cell joins, large enough to time. With both, the headline (ours, baseline, ratio) is
  this set's, the SSCD set's figures are under ``real_sscd``.
Correctness: recall of the > link pairs against the exact search must reach RECALL_GOAL on every set, else the bench
exits 1 with ratio null.

Same vectors, each side in its own process (peak RSS per side from wait4):
- ours: `knn.similar_pairs` with --method join (IVF probing computed as BLAS products; default) or ivf (FAISS IVF
  range search), nprobe 16, + `dedup.apply_rule`;
- baseline: exact blockwise brute force in numpy (`knn.exact_pairs_numpy`) + the same rule;
reporting time, peak memory, recall of the > link pairs against the exact search and how many decisions differ.
Then the fast path alone at --scale-n synthetic vectors (default 1M; a corpus that size cannot be embedded on a
CPU here: the sample holds 55 images) with a projection to 110M (time ∝ N^1.5 with nlist ∝ √N; index bytes ∝ N).
Defaults: --copies 12 (--quick 4), --n 200K (--quick 30K) for synthetic, --scale-n 1M (--quick 100K).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

GPIC_N = 110_000_000
RECALL_GOAL = 0.99  # of the pairs above the link threshold, against exact search
RATIO_GOAL = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=("both", "sscd", "synthetic"), default="both",
                        help="sscd: SSCD embeddings of the sample corpus + generated copies; synthetic: planted "
                             "random vectors; both (default): each compared on its own")
    parser.add_argument("--shards", nargs="+", default=None, help="shards/dirs embedded for --source sscd "
                                                                   "(default: <data root>/sample)")
    parser.add_argument("--copies", type=int, default=None, help="generated copies per image (default 12; --quick 4)")
    parser.add_argument("--n", type=int, default=None, help="synthetic vectors for ours vs exact (default 200000; "
                                                            "--quick 30000)")
    parser.add_argument("--scale-n", type=int, default=None, help="vectors for the fast path alone (default "
                                                                  "1000000; --quick 100000; 0 skips)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (default 512, SSCD)")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF cells probed per query (default 16)")
    parser.add_argument("--link", type=float, default=0.90, help="link threshold (default 0.90, SSCD)")
    parser.add_argument("--storage", choices=("fp16", "flat"), default=None,
                        help="vector storage (default: flat for join, fp16 for ivf)")
    parser.add_argument("--method", choices=("join", "ivf"), default="join",
                        help="fast path: join (IVF probing as BLAS products, the CPU default of knn) or ivf (FAISS)")


def side(kind: str, n: int, dim: int, nprobe: int, link: float, storage: str | None = None, method: str = "join",
         seed: int = 7, vectors: str | None = None) -> dict[str, Any]:
    """One side in this process: generate (or load ``vectors``, an .npy file), search, apply the rule; returns
    timings, pairs and decisions.

    kind: ``exact`` (numpy), ``fast`` (``method`` on vectors in memory) or ``stream`` (``method`` over regenerated
    chunks: the input float32 matrix never exists, as when streaming per-shard embedding caches)."""
    import numpy as np

    from gpic_lab.dedup import knn
    from gpic_lab.dedup import rule as dedup

    if vectors:
        x = np.load(vectors)
        n = len(x)
    else:
        x = knn.planted_chunks(n, dim, seed=seed) if kind == "stream" else knn.planted_embeddings(n, dim, seed=seed)
    t0 = time.perf_counter()
    if kind == "exact":
        pairs = knn.exact_pairs_numpy(x, link)
    else:
        pairs = knn.similar_pairs(x, link, method=method, nprobe=nprobe, storage=storage, gpu=False)
    t_search = time.perf_counter() - t0
    rule = dedup.Rule(link, max(link, 0.9625))
    pixels = np.random.default_rng(seed).integers(100_000, 4_000_000, n)
    keys = np.char.zfill(np.arange(n).astype(str), 9)
    res = dedup.apply_rule(n, pairs.i, pairs.j, pairs.sim, dedup.rank_order(pixels, keys), rule)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "search_seconds": t_search, "rule_seconds": seconds - t_search,
            "pairs": len(pairs), "pair_codes": (pairs.i * n + pairs.j).tolist() if n <= 400_000 else None,
            "dropped": np.nonzero(~res.keep)[0].tolist() if n <= 400_000 else None,
            "counts": res.counts(), "info": pairs.info}


def _in_child(kind: str, n: int, args: argparse.Namespace, vectors: str | None = None) -> dict[str, Any]:
    code = ("import json,sys; from gpic_lab.benches.dedup import side; "
            f"print(json.dumps(side({kind!r}, {n}, {args.dim}, {args.nprobe}, {args.link}, {args.storage!r}, "
            f"{args.method!r}, 7, {vectors!r})))")
    print(f"bench dedup: {kind} on {n} vectors ...", file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        from gpic_lab.errors import GpicError

        raise GpicError(f"bench dedup: the {kind} side exited with {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    print(f"bench dedup: {kind}: {result['seconds']:.1f} s, {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
    return result


def sscd_vectors(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """SSCD embeddings of the sample corpus + generated copies, cached; returns (.npy path, description)."""
    import numpy as np

    from gpic_lab.dedup import copies, embed, embed_cache
    from gpic_lab.paths import data_root, state_root
    from gpic_lab.shards.reader import list_shards

    args.dim = 512  # SSCD's embedding size
    k = args.copies if args.copies is not None else (4 if args.quick else 12)
    shards = list_shards(args.shards or [str(data_root() / "sample")])
    shards = [s for s in shards if "/broken/" not in s.replace("\\", "/")]  # planted tar faults, not images
    root = state_root() / "bench_dedup"
    tar = root / f"copies_k{k}_00000.tar"
    if not tar.is_file():
        print(f"bench dedup: writing {k} generated copies per image of {len(shards)} shard(s) ...", file=sys.stderr)
        truth = copies.write_copies_shard(shards, tar, per_image=k, seed=0)
        truth.to_csv(tar.with_suffix(".csv"), index=False)
    enc = embed.load_encoder("sscd")
    print(f"bench dedup: SSCD embeddings of {tar.name} (cached after the first run) ...", file=sys.stderr, flush=True)
    emb, stats = embed_cache.embed_shards([str(tar)], enc, root / "embed_cache")
    path = root / f"copies_k{k}.{enc.cache_id()}.npy"
    np.save(path, emb.vectors)
    return str(path), {"source": f"SSCD ({enc.info['model']}) of {len(shards)} sample shard(s) + {k} generated "
                                 f"copies per image", "images": len(emb), "embed_cache": stats}


def compare(args: argparse.Namespace, n: int, vectors: str | None, source: dict[str, Any]) -> dict[str, Any]:
    """Ours and exact brute force on the same vectors, each in its own process; timings, memory, recall, decisions."""
    ours, base = _in_child("fast", n, args, vectors), _in_child("exact", n, args, vectors)
    truth, found = set(base.pop("pair_codes")), set(ours.pop("pair_codes"))
    recall = len(truth & found) / max(len(truth), 1)
    differ = len(set(base.pop("dropped")) ^ set(ours.pop("dropped")))
    return {"n": n, **source, "ours": round(n / ours["seconds"], 1), "baseline": round(n / base["seconds"], 1),
            "ratio": round(base["seconds"] / ours["seconds"], 2), "storage": ours["info"].get("storage"),
            "pairs_above_link": len(truth), "recall_pairs_above_link": round(recall, 5),
            "decisions_differing": differ, "ours_detail": ours, "baseline_detail": base,
            "peak_rss_mb_ours": ours["peak_rss_mb"], "peak_rss_mb_baseline": base["peak_rss_mb"]}


def _scale(args: argparse.Namespace, scale_n: int) -> dict[str, Any]:
    big = _in_child("stream", scale_n, args)
    big.pop("pair_codes"), big.pop("dropped")
    factor = GPIC_N / scale_n
    return {"n": scale_n, "source": "synthetic planted unit vectors (speed and memory only)",
            "seconds": round(big["seconds"], 1), "peak_rss_mb": big["peak_rss_mb"],
            "index_mb": round(big["info"]["index_bytes"] / 2**20, 1), "counts": big["counts"],
            "embeddings_mb_per_1m_float32": round(1e6 * args.dim * 4 / 2**20, 1),
            "index_mb_per_1m": round(big["info"]["index_bytes"] / 2**20 / (scale_n / 1e6), 1),
            "projected_110m_cpu_hours": round(big["seconds"] * factor**1.5 / 3600, 1),
            "projected_110m_index_gb": round(big["info"]["index_bytes"] * factor / 2**30, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpic_lab.benches.record import gate

    sets: dict[str, dict[str, Any]] = {}
    if args.source in ("both", "sscd"):
        vectors, source = sscd_vectors(args)
        sets["real_sscd"] = compare(args, source["images"], vectors, source)
    if args.source in ("both", "synthetic"):
        n = args.n or (30_000 if args.quick else 200_000)
        sets["synthetic"] = compare(args, n, None, {"source": "synthetic planted unit vectors "
                                                              "(knn.planted_embeddings)"})
    head = sets.get("synthetic") or sets["real_sscd"]
    result: dict[str, Any] = {
        "name": "dedup", "unit": "vectors/s", "dim": args.dim, "link": args.link, "nprobe": args.nprobe,
        "method": args.method, **head, "goal": f"ratio >= {RATIO_GOAL} at recall >= {RECALL_GOAL} on every set",
        "goal_met": all(v["recall_pairs_above_link"] >= RECALL_GOAL for v in sets.values())
        and head["ratio"] >= RATIO_GOAL, "machine": f"{os.cpu_count()} cores (shared)"}
    if "synthetic" in sets and "real_sscd" in sets:
        result["real_sscd"] = sets["real_sscd"]
    scale_n = args.scale_n if args.scale_n is not None else (100_000 if args.quick else 1_000_000)
    if scale_n:
        result["scale"] = _scale(args, scale_n)
    return gate(result, [f"{name}: recall of the pairs above {args.link} is {v['recall_pairs_above_link']:.4f}, "
                         f"under {RECALL_GOAL}" for name, v in sets.items()
                         if v["recall_pairs_above_link"] < RECALL_GOAL])
