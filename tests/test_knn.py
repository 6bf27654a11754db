"""FAISS pair search against the numpy brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from gpic_lab.dedup import knn
from gpic_lab.errors import UsageError


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return knn.planted_embeddings(6000, dim=64, seed=3)


def test_planted_embeddings_are_unit_and_have_dups(vectors: np.ndarray) -> None:
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    ref = knn.exact_pairs_numpy(vectors, 0.9)
    assert 100 < len(ref) < 6000 and (ref.i < ref.j).all() and (ref.sim > 0.9).all()


def test_numpy_reference_matches_dense_matrix(vectors: np.ndarray) -> None:
    x = vectors[:700]
    ref = knn.exact_pairs_numpy(x, 0.5, block=128)
    s = x @ x.T
    r, c = np.nonzero(np.triu(s, 1) > 0.5)
    assert ref.as_set() == set(zip(r.tolist(), c.tolist(), strict=True))


@pytest.mark.parametrize("method", ["exact", "ivf", "join"])
def test_faiss_finds_the_reference_pairs(vectors: np.ndarray, method: str) -> None:
    ref = knn.exact_pairs_numpy(vectors, 0.9)
    found = knn.similar_pairs(vectors, 0.9, method=method, chunk_size=1000)
    assert found.info["method"] == method
    assert knn.recall(found, ref) >= 0.99
    assert found.as_set() <= ref.as_set() | {(a, b) for a, b in found.as_set()
                                             if float(vectors[a] @ vectors[b]) > 0.899}
    assert (found.i < found.j).all() and len(found.as_set()) == len(found)
    by_pair = dict(zip(zip(found.i.tolist(), found.j.tolist(), strict=True), found.sim.tolist(), strict=True))
    a, b = next(iter(by_pair))
    assert by_pair[(a, b)] == pytest.approx(float(vectors[a] @ vectors[b]), abs=2e-3)


def test_streamed_chunks_equal_in_memory(vectors: np.ndarray) -> None:
    calls = []

    def chunks():
        calls.append(1)
        return (vectors[s:s + 512] for s in range(0, len(vectors), 512))

    streamed = knn.similar_pairs(chunks, 0.9, method="exact")
    assert streamed.as_set() == knn.similar_pairs(vectors, 0.9, method="exact").as_set()
    assert len(calls) >= 2  # read once to add, once to query: never concatenated


def test_auto_method_and_bad_method(vectors: np.ndarray) -> None:
    assert knn.similar_pairs(vectors[:100], 0.9).info["method"] == "exact"
    with pytest.raises(UsageError, match="unknown method"):
        knn.similar_pairs(vectors, 0.9, method="lsh")
    empty = knn.similar_pairs(np.zeros((0, 8), np.float32), 0.9)
    assert len(empty) == 0


def test_cross_pairs_finds_query_base_matches(vectors: np.ndarray) -> None:
    base = vectors[:50]
    noisy = base[:5] + 0.01 * np.random.default_rng(0).standard_normal(base[:5].shape).astype(np.float32)
    queries = np.concatenate([vectors[100:200], noisy / np.linalg.norm(noisy, axis=1, keepdims=True)])
    pairs = knn.cross_pairs(queries, base, 0.9)
    assert {(i - 100, j) for i, j in zip(pairs.i.tolist(), pairs.j.tolist(), strict=True) if i >= 100} == {(k, k) for k in range(5)}
    assert (np.diff(pairs.sim) <= 0).all()


def test_ivf_flat_storage_and_bad_storage(vectors: np.ndarray) -> None:
    ref = knn.exact_pairs_numpy(vectors, 0.9)
    flat = knn.similar_pairs(vectors, 0.9, method="ivf", storage="flat")
    assert flat.info["storage"] == "flat" and knn.recall(flat, ref) >= 0.99
    assert flat.info["index_bytes"] == 2 * knn.similar_pairs(vectors, 0.9, method="ivf").info["index_bytes"] - 8 * 6000
    with pytest.raises(UsageError, match="unknown storage"):
        knn.similar_pairs(vectors, 0.9, method="ivf", storage="pq")


def test_planted_chunks_are_deterministic_and_match_the_array() -> None:
    stream = knn.planted_chunks(3000, 32, seed=5, chunk=1000)
    first, again = np.concatenate(list(stream())), np.concatenate(list(stream()))
    assert np.array_equal(first, again)
    assert np.array_equal(first, knn.planted_embeddings(3000, 32, seed=5, chunk=1000))


def test_join_equals_ivf_probing_and_auto_picks_it(vectors: np.ndarray) -> None:
    ref = knn.exact_pairs_numpy(vectors, 0.9)
    for storage in ("flat", "fp16"):
        found = knn.similar_pairs(vectors, 0.9, method="join", storage=storage, nprobe=64)
        assert found.info["storage"] == storage and knn.recall(found, ref) == 1.0
    one_probe = knn.similar_pairs(vectors, 0.9, method="join", nprobe=1)
    assert len(one_probe) <= len(ref) and one_probe.info["nprobe"] == 1
    old = knn.EXACT_MAX
    try:
        knn.EXACT_MAX = 1000
        assert knn.similar_pairs(vectors, 0.9, gpu=False).info["method"] == "join"
    finally:
        knn.EXACT_MAX = old
