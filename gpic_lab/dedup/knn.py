"""All pairs above a cosine threshold, with FAISS: exact for small sets, IVF for large ones, streamed in chunks.

Vectors are L2-normalised float32 rows, so cosine = inner product. The search is a *range search*: every pair
with similarity > threshold is returned once as (i, j, sim) with i < j (global row numbers in chunk order).

- ``exact``: ``IndexFlatIP`` (brute force inside FAISS, BLAS), queried chunk by chunk.
- ``ivf``: ``IndexIVFScalarQuantizer`` (fp16 storage: 2 bytes per dimension, half the float32 input) with
  ``nlist ≈ 4·√N`` cells, trained (10 k-means iterations) on 16·nlist vectors of the first chunks and probed in ``nprobe`` cells per query.
- ``join``: the probing scheme of ``ivf`` (its own spherical k-means centroids, each vector stored in its nearest
  cell and probing its nprobe nearest cells), computed cell by cell as one matrix product between the vectors
  that probe a cell and the cell's members: what an IVF range search with these centroids finds, at BLAS speed.
  The CPU default above EXACT_MAX vectors.
- GPU: with a CUDA build of FAISS (``faiss.get_num_gpus() > 0``) the index moves to the GPU and the range search
  becomes a k-NN search (``gpu_k`` neighbours) filtered by the threshold, because GPU indexes have no range search.

Memory is bounded by the index (N·D·2 bytes for ivf/fp16, N·D·4 for exact and join/flat, + 3·nprobe ids per
vector for join) plus one query chunk and its
results: ``chunks`` is a callable returning a fresh iterator, read twice (add, then query), so callers can stream
per-shard embedding caches without holding every vector as float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from gpic_lab.errors import UsageError

EXACT_MAX = 50_000  # method="auto" switches from exact to IVF above this many vectors
METHODS = ("auto", "exact", "ivf", "join")
STORAGES = ("fp16", "flat")  # IVF storage: fp16 scalar quantizer (2 B/dim) or float32 (4 B/dim)


@dataclass
class Pairs:
    """Pairs above a threshold: i < j row numbers and their similarity (float32)."""

    i: np.ndarray
    j: np.ndarray
    sim: np.ndarray
    info: dict

    def __len__(self) -> int:
        return len(self.i)

    def as_set(self) -> set[tuple[int, int]]:
        return set(zip(self.i.tolist(), self.j.tolist(), strict=True))


def _chunked(vectors: np.ndarray, size: int) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: (vectors[s:s + size] for s in range(0, len(vectors), size))


def _unique_upper(qi: np.ndarray, qj: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep i < j and collapse the (i, j)/(j, i) duplicates of a symmetric search (max similarity wins)."""
    a, b = np.minimum(qi, qj), np.maximum(qi, qj)
    keep = a != b
    a, b, sim = a[keep], b[keep], sim[keep]
    if not len(a):
        return a, b, sim
    code = a.astype(np.int64) * (int(b.max()) + 1) + b
    order = np.lexsort((-sim, code))
    code, a, b, sim = code[order], a[order], b[order], sim[order]
    first = np.ones(len(code), bool)
    first[1:] = code[1:] != code[:-1]
    return a[first], b[first], sim[first]


def exact_pairs_numpy(vectors: np.ndarray, threshold: float, block: int | None = None) -> Pairs:
    """The reference: blockwise brute-force X·Xᵀ in numpy, every pair with similarity > threshold.

    The default block keeps one similarity block near 256 MB (rows × N × 4 bytes)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    block = block or int(min(4096, max(64, 2**26 // max(len(x), 1))))
    out_i, out_j, out_s = [], [], []
    for s in range(0, len(x), block):
        sims = x[s:s + block] @ x[s:].T  # upper block-triangle only
        r, c = np.nonzero(sims > threshold)
        c = c + s
        keep = c > r + s
        out_i.append((r + s)[keep])
        out_j.append(c[keep])
        out_s.append(sims[r[keep], c[keep] - s])
    return Pairs(_cat(out_i, np.int64), _cat(out_j, np.int64), _cat(out_s, np.float32), {"method": "numpy-exact"})


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)



def _gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def build_index(chunks: Callable[[], Iterable[np.ndarray]], n: int, dim: int, method: str = "auto",
                nlist: int | None = None, train_size: int | None = None, storage: str = "fp16") -> tuple[object, dict]:
    """A filled FAISS inner-product index over every chunk (chunks are read once here)."""
    import faiss

    if method not in METHODS:
        raise UsageError(f"knn: unknown method {method!r}; choose from {', '.join(METHODS)}")
    method = ("exact" if n <= EXACT_MAX else "ivf") if method == "auto" else method
    info: dict = {"method": method, "n": n, "dim": dim}
    if method == "exact":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(dim)
        if storage not in STORAGES:
            raise UsageError(f"knn: unknown storage {storage!r}; choose from {', '.join(STORAGES)}")
        index = (faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT) if storage == "flat" else
                 faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                               faiss.METRIC_INNER_PRODUCT))
        info["storage"] = storage
        index.cp.niter = 10  # k-means iterations: cells only need to be coarse for range search
        index.train(_training_sample(chunks, train_size or min(n, 16 * nlist)))
        info["nlist"] = nlist
    for chunk in chunks():
        index.add(np.ascontiguousarray(chunk, dtype=np.float32))
    per_dim = 2 if method == "ivf" and storage == "fp16" else 4
    info["index_bytes"] = int(index.ntotal * (dim * per_dim + (8 if method == "ivf" else 0)))
    return index, info


def _training_sample(chunks: Callable[[], Iterable[np.ndarray]], size: int) -> np.ndarray:
    parts, have = [], 0
    for chunk in chunks():
        parts.append(np.asarray(chunk[: size - have], dtype=np.float32))
        have += len(parts[-1])
        if have >= size:
            break
    return np.ascontiguousarray(np.concatenate(parts))


def similar_pairs(chunks: Callable[[], Iterable[np.ndarray]] | np.ndarray, threshold: float,
                  method: str = "auto", nprobe: int = 16, nlist: int | None = None, chunk_size: int = 16384,
                  gpu: bool | None = None, gpu_k: int = 64, progress: bool | str = False, storage: str | None = None) -> Pairs:
    """Every pair of rows with inner product > threshold, once, as i < j.

    Args:
        chunks: an array [N, D] or a callable returning a fresh iterator of float32 chunks (read twice).
        threshold: cosine threshold (pairs strictly above are returned).
        method: ``auto`` (exact up to EXACT_MAX vectors, then ``join`` on CPU / ``ivf`` on GPU), ``exact``,
            ``ivf`` (FAISS IVF range search) or ``join`` (the same probing as IVF, computed cell by cell with BLAS).
        nprobe: IVF cells visited per query (recall/time trade-off).
        storage: vector storage, ``fp16`` (half the memory) or ``flat`` (float32); default fp16 for ``ivf``,
            flat for ``join`` (its products run on float32 copies, so flat saves the conversions).
        gpu: use GPU FAISS (None: when a GPU build and a GPU are present).
        progress: a bar with rate and ETA on stderr (``auto``/``on``/``off`` or a bool, see ``gpic_lab.progress``).
    """
    if isinstance(chunks, np.ndarray):
        chunks = _chunked(chunks, chunk_size)
    n, dim = 0, 0
    for c in chunks():
        n, dim = n + len(c), c.shape[1]
    if n == 0:
        return Pairs(*(np.zeros(0, np.int64),) * 2, np.zeros(0, np.float32), {"method": "empty", "n": 0})
    use_gpu = _gpu_count() > 0 if gpu is None else gpu
    if method == "join" or (method == "auto" and n > EXACT_MAX and not use_gpu):
        return cell_join(chunks, n, dim, threshold, nlist, nprobe, storage or "flat", progress)
    index, info = build_index(chunks, n, dim, method, nlist, storage=storage or "fp16")
    if info["method"] == "ivf":
        index.nprobe = min(nprobe, info["nlist"])
        info["nprobe"] = index.nprobe
    if use_gpu:
        import faiss

        index = faiss.index_cpu_to_all_gpus(index)
    info["gpu"] = bool(use_gpu)
    from gpic_lab.progress import bar

    parts, start = [], 0
    with bar(n, f"knn {info['method']}", "vec", progress, unit_scale=True) as pbar:
        for chunk in chunks():
            q = np.ascontiguousarray(chunk, dtype=np.float32)
            qi, qj, sims = (_knn_chunk(index, q, threshold, gpu_k) if use_gpu else _range_chunk(index, q, threshold))
            parts.append((qi + start, qj, sims))
            start += len(q)
            pbar.update(len(q))
    qi, qj, sims = (np.concatenate([p[k] for p in parts]) for k in range(3))
    i, j, s = _unique_upper(qi, qj, sims)
    return Pairs(i, j, s.astype(np.float32), info)


def cell_join(chunks: Callable[[], Iterable[np.ndarray]], n: int, dim: int, threshold: float,
              nlist: int | None = None, nprobe: int = 16, storage: str = "flat", progress: bool | str = False) -> Pairs:
    """IVF probing done as matrix products: every vector lives in its nearest cell, and the vectors that probe a
    cell (it is among their ``nprobe`` nearest centroids) are multiplied against that cell's members at once.

    Finds exactly the pairs an IVF range search with the same centroids and nprobe finds, but with BLAS instead of
    per-query list scans. Memory: the vectors (float32 by default: 2 KB per 512-d vector; fp16 halves it) + 3
    × nprobe ids per vector.
    """
    import faiss

    if storage not in STORAGES:
        raise UsageError(f"knn: unknown storage {storage!r}; choose from {', '.join(STORAGES)}")
    nlist = nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
    nprobe = min(nprobe, nlist)
    km = faiss.Kmeans(dim, nlist, niter=10, spherical=True, seed=1234, verbose=False)
    km.train(_training_sample(chunks, min(n, 16 * nlist)))
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(km.centroids)
    store = np.empty((n, dim), np.float16 if storage == "fp16" else np.float32)
    probes = np.empty((n, nprobe), np.int32)
    start = 0
    for chunk in chunks():
        q = np.ascontiguousarray(chunk, dtype=np.float32)
        probes[start:start + len(q)] = quantizer.search(q, nprobe)[1]
        store[start:start + len(q)] = q
        start += len(q)
    members = np.argsort(probes[:, 0], kind="stable")
    m_bounds = np.searchsorted(probes[members, 0], np.arange(nlist + 1))
    flat = probes.ravel()
    askers = np.argsort(flat, kind="stable")
    a_bounds = np.searchsorted(flat[askers], np.arange(nlist + 1))
    from gpic_lab.progress import bar

    parts = []
    for c in bar(nlist, "knn join", "cell", progress, iterable=range(nlist)):
        base = members[m_bounds[c]:m_bounds[c + 1]]
        if not len(base):
            continue
        q_ids = askers[a_bounds[c]:a_bounds[c + 1]] // nprobe
        sims = store[q_ids].astype(np.float32) @ store[base].astype(np.float32).T
        r, k = np.nonzero(sims > threshold)
        parts.append((q_ids[r], base[k], sims[r, k]))
    qi, qj, sims = (np.concatenate([p[k] for p in parts]) for k in range(3))
    i, j, s = _unique_upper(qi.astype(np.int64), qj.astype(np.int64), sims)
    info = {"method": "join", "n": n, "dim": dim, "nlist": nlist, "nprobe": nprobe, "storage": storage,
            "gpu": False, "index_bytes": int(store.nbytes + probes.nbytes)}
    return Pairs(i, j, s.astype(np.float32), info)


def _range_chunk(index: object, q: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lims, dist, labels = index.range_search(q, float(threshold))  # type: ignore[attr-defined]
    rows = np.repeat(np.arange(len(q), dtype=np.int64), np.diff(lims.astype(np.int64)))
    keep = dist > threshold
    return rows[keep], labels[keep].astype(np.int64), dist[keep].astype(np.float32)


def _knn_chunk(index: object, q: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist, labels = index.search(q, k)  # type: ignore[attr-defined]
    rows = np.repeat(np.arange(len(q), dtype=np.int64), k).reshape(len(q), k)
    keep = (dist > threshold) & (labels >= 0)
    return rows[keep], labels[keep].astype(np.int64), dist[keep].astype(np.float32)


def cross_pairs(queries: np.ndarray | Callable[[], Iterable[np.ndarray]], base: np.ndarray, threshold: float,
                chunk_size: int = 16384) -> Pairs:
    """Pairs (query row i, base row j) with similarity > threshold — exact, for train-vs-test leakage.

    ``queries`` is an array or a callable returning a fresh iterator of chunks (rows numbered in order)."""
    import faiss

    if isinstance(queries, np.ndarray):
        queries = _chunked(queries, chunk_size)
    out, start = [], 0
    index = None
    if len(base):
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(np.ascontiguousarray(base, dtype=np.float32))
    for chunk in queries():
        if index is not None and len(chunk):
            qi, qj, sims = _range_chunk(index, np.ascontiguousarray(chunk, np.float32), threshold)
            out.append((qi + start, qj, sims))
        start += len(chunk)
    if not out:
        return Pairs(*(np.zeros(0, np.int64),) * 2, np.zeros(0, np.float32), {"method": "exact"})
    i, j, s = (np.concatenate([p[k] for p in out]) for k in range(3))
    order = np.argsort(-s, kind="stable")
    return Pairs(i[order], j[order], s[order], {"method": "exact"})


def recall(found: Pairs, truth: Pairs) -> float:
    """Share of the reference pairs that the search found (1.0 when the reference is empty)."""
    t = truth.as_set()
    return 1.0 if not t else len(t & found.as_set()) / len(t)


def planted_chunk(start: int, size: int, dim: int = 512, dup_fraction: float = 0.05, max_cluster: int = 8,
                  seed: int = 0) -> np.ndarray:
    """Rows [start, start+size) of a synthetic corpus: random unit directions plus planted near-duplicate clusters.

    About ``dup_fraction`` of the rows are copies of another row of the same chunk at cosine ~0.85–0.995 to it
    (clusters of 2..max_cluster), so every similarity band of the rule is populated; the rest are independent
    (|cos| ≈ 1/√dim). Deterministic in (seed, start): a chunk can be regenerated instead of kept in memory.
    """
    rng = np.random.default_rng([seed, start])
    x = rng.standard_normal((size, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n_dups = int(size * dup_fraction)
    pos = rng.choice(size, size=n_dups, replace=False) if n_dups else np.zeros(0, int)
    t = 0
    while t < n_dups:
        members = pos[t:t + int(rng.integers(2, max_cluster + 1))]
        t += len(members)
        if len(members) < 2:
            continue
        cos = rng.uniform(0.85, 0.995, size=len(members) - 1)
        sigma = np.sqrt((1 / cos**2 - 1) / dim).astype(np.float32)
        copies = x[members[0]][None, :] + rng.standard_normal((len(members) - 1, dim), dtype=np.float32) * sigma[:, None]
        x[members[1:]] = copies / np.linalg.norm(copies, axis=1, keepdims=True)
    return x


def planted_chunks(n: int, dim: int = 512, seed: int = 0, chunk: int = 65536) -> Callable[[], Iterator[np.ndarray]]:
    """A re-readable stream of ``planted_chunk``s covering n rows (nothing is kept between reads)."""
    return lambda: (planted_chunk(s, min(chunk, n - s), dim, seed=seed) for s in range(0, n, chunk))


def planted_embeddings(n: int, dim: int = 512, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    """The whole synthetic corpus of ``planted_chunks`` in memory (float32 [n, dim])."""
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        out[s:s + chunk] = planted_chunk(s, min(chunk, n - s), dim, seed=seed)
    return out
