"""Reference statistics files in GPIC's npz layout: dino_mu, dino_sigma, optional dino_embeddings, key, tar_idx.

Files we write are named by their full configuration (split, count, backbone + weights digest, preprocessing,
precision), are written once (refusing to overwrite) and get a sidecar `<name>.json` with provenance (shards,
counts, skipped members by reason, package versions). `read_stats` also reads the official GPIC
`test_stats.npz` / `val_stats.npz` and any npz holding only `dino_embeddings`.
OUR ASSUMPTION: the paper says the reference statistics come from the 1M test images, while one third-party tool says
the official file was computed from a 50K subset; we compute mu/sigma over every image given and store embeddings
(for PRDC/MMD) for all of them or, with ``max_embeddings``, for a seeded subset.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.core.npz import open_npz
from gpic_lab.errors import GpicError, UsageError

PREPROCESS_TAG = "crop-pilbicubic256-stretch224-imagenet"


def config_name(split: str, n: int, model_tag: str, dtype: str = "fp32") -> str:
    """e.g. `gpic-test_n1000000_dinov2-vitl14-ab12cd34_crop-pilbicubic256-stretch224-imagenet_fp32.npz`."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{split}")
    return f"gpic-{safe}_n{n}_{model_tag}_{PREPROCESS_TAG}_{dtype}.npz"


def read_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """mu, sigma (float64), embeddings (or None), keys (or None), tar_idx (or None), n, path.

    Accepts dino_mu + dino_sigma and/or dino_embeddings; mu/sigma come from the embeddings when absent.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: stats file not found")
    with open_npz(p) as data:  # never unpickles: object arrays and mistyped members are one-line UsageErrors
        names = set(data.files)
        emb = data.numeric("dino_embeddings") if "dino_embeddings" in names else None
        if emb is not None and emb.ndim != 2:
            raise UsageError(f"{p}: dino_embeddings has shape {emb.shape}, expected [N, dim]")
        if {"dino_mu", "dino_sigma"} <= names:
            mu, sigma = data.numeric("dino_mu"), data.numeric("dino_sigma")
        elif emb is not None:
            from gpic_lab.evaluation.fd import stats_from_features

            mu, sigma = stats_from_features(emb)
        else:
            raise UsageError(f"{p}: holds neither dino_mu+dino_sigma nor dino_embeddings (members: {sorted(names)})")
        keys = data.text("key") if "key" in names else None
        tar_idx = data.integers("tar_idx") if "tar_idx" in names else None
        n = _count(data) if "n" in names else (len(emb) if emb is not None else None)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UsageError(f"{p}: dino_mu {mu.shape} and dino_sigma {sigma.shape} are inconsistent")
    return {"mu": mu, "sigma": sigma, "embeddings": emb, "keys": keys, "tar_idx": tar_idx, "n": n, "path": str(p)}


def _count(data: Any) -> int:
    n = data.integers("n")
    if n.size != 1 or int(n.reshape(-1)[0]) < 0:
        raise UsageError(f"{data.path}: member 'n' must be one non-negative integer, got shape {n.shape}")
    return int(n.reshape(-1)[0])


def write_stats(path: str | os.PathLike[str], mu: np.ndarray, sigma: np.ndarray, n: int,
                embeddings: np.ndarray | None = None, keys: list[str] | None = None,
                tar_idx: list[int] | None = None, provenance: dict[str, Any] | None = None) -> Path:
    """Write the npz (atomically) and its sidecar JSON; refuses to overwrite an existing file."""
    from gpic_lab.fsio import atomic_path, write_json_atomic

    p = Path(path)
    if p.suffix != ".npz":
        raise UsageError(f"{p}: reference stats must be written to a .npz path")
    if p.exists():
        raise GpicError(f"{p}: already exists; refusing to overwrite reference statistics")
    arrays: dict[str, Any] = {"dino_mu": np.asarray(mu, np.float64), "dino_sigma": np.asarray(sigma, np.float64),
                              "n": np.int64(n)}
    if embeddings is not None:
        arrays["dino_embeddings"] = np.asarray(embeddings, np.float32)
    if keys is not None:
        arrays["key"] = np.asarray(keys, dtype=str)
    if tar_idx is not None:
        arrays["tar_idx"] = np.asarray(tar_idx, dtype=np.int64)
    with atomic_path(p) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    write_json_atomic(sidecar(p), {**(provenance or {}), "file": p.name, "n": n, "dim": int(np.asarray(mu).shape[0]),
                                   "members": sorted(arrays), "versions": versions()})
    return p


def sidecar(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".json")


def versions() -> dict[str, str]:
    """Versions that change features or numerics."""
    import importlib.metadata as md

    out = {}
    for name in ("gpic-lab", "numpy", "scipy", "torch", "transformers", "pillow", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def tar_index(shard: str) -> int:
    """The shard number from its name (gpic_test_00042.tar -> 42); -1 when it has none."""
    m = re.search(r"(\d+)\D*$", Path(shard).name)
    return int(m.group(1)) if m else -1


def find_existing(out: str | os.PathLike[str], split: str, model_tag: str, shards: list[str]) -> dict[str, Any] | None:
    """A config-named stats file under `out` whose sidecar lists exactly these shards, or None."""
    import json

    folder = Path(out)
    if folder.suffix == ".npz":
        cands = [folder] if folder.exists() else []
    else:
        cands = sorted(folder.glob(config_name(split, 0, model_tag).replace("_n0_", "_n*_")))
    for cand in cands:
        side = sidecar(cand)
        if side.exists():
            meta = json.loads(side.read_text())
            if meta.get("shards") == [str(p) for p in shards]:
                return {"path": str(cand), "n": meta["n"], "dim": meta["dim"], "skipped": meta.get("skipped", {}),
                        "seconds": 0.0, "reused": True}
    return None


def build_refstats(shards: list[str], model: Any, out: str | os.PathLike[str], split: str = "test",
                   model_tag: str = "dinov2", batch_size: int = 64, threads: int | None = None,
                   keep_embeddings: bool = True, limit: int | None = None, reuse: bool = False,
                   partial: bool = False, max_embeddings: int | None = None, seed: int = 0,
                   progress: bool | str = False) -> dict[str, Any]:
    """Stream shards -> GPIC-256 -> DINOv2 features -> running stats; write a config-named npz under `out`.

    `out` is a directory (the file is named by `config_name`) or an explicit .npz path. Undecodable images are
    skipped and counted by reason in the sidecar (never silently). With `reuse`, an existing file of the same
    configuration built from the same shards is returned instead (files are never overwritten). With `partial`,
    a mergeable partial file (n, sum, outer) is written instead; combine partials with `merge_partials`.
    `max_embeddings` keeps a seeded uniform reservoir sample of that many embeddings (GPIC's files: mu/sigma over
    all images, `dino_embeddings`/`key`/`tar_idx` for a 50K subset); mu/sigma always cover every image.
    `progress`: images done and rate on stderr (see ``gpic_lab.progress``).
    """
    from gpic_lab.evaluation.fd import RunningStats
    from gpic_lab.evaluation.features import stream_features
    from gpic_lab.shards.reader import iter_samples, list_shards

    paths = list_shards(shards)
    if reuse:
        found = find_existing(out, split, model_tag, paths)
        if found is not None:
            return found
    if Path(out).suffix == ".npz" and Path(out).exists():
        raise GpicError(f"{out}: already exists; refusing to overwrite {'partial' if partial else 'reference'} "
                        "statistics")
    dim = int(model.config.hidden_size)
    stats = RunningStats(dim)
    kept = Reservoir(max_embeddings, seed)
    skipped: Counter[str] = Counter()
    t0 = time.perf_counter()

    def items() -> Any:
        count = 0
        for sample in iter_samples(paths):
            if limit is not None and count >= limit:
                return
            count += 1
            yield (sample.key, tar_index(sample.shard)), sample.image

    for ids, feats in stream_features(items(), model, reference=True, batch_size=batch_size, threads=threads,
                                      skipped=skipped, progress=progress, desc="refstats"):
        stats.update(feats)
        kept.add(ids, feats.astype(np.float32))
    if stats.n < (1 if partial else 2):
        raise GpicError(f"refstats: only {stats.n} image(s) decoded from {len(paths)} shard(s)")
    seconds = time.perf_counter() - t0
    prov = {"kind": "gpic-lab refstats" + (" partial" if partial else ""), "split": split,
            "shards": [str(p) for p in paths], "n_shards": len(paths), "skipped": dict(skipped), "model": model_tag,
            "preprocess": PREPROCESS_TAG, "seconds": round(seconds, 3),
            "images_per_s": round(stats.n / max(seconds, 1e-9), 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ids, emb = kept.result(dim)
    keys, tar_idx = [k for k, _ in ids], [t for _, t in ids]
    emb = emb if keep_embeddings else None
    prov["embeddings"] = {"rows": len(keys), "of": stats.n, "selection": "all" if max_embeddings is None else
                          f"seeded uniform reservoir (seed {seed})", "stored": keep_embeddings}
    target = Path(out)
    if target.suffix != ".npz":
        name = config_name(split, stats.n, model_tag)
        target = target / (f"partial-{paths[0].rsplit('/', 1)[-1].removesuffix('.tar')}_{name}" if partial else name)
    if partial:
        write_partial(target, stats, emb, keys, tar_idx, prov)
    else:
        write_stats(target, stats.mean, stats.cov, stats.n, emb, keys, tar_idx, prov)
    from gpic_lab.progress import log

    log(__name__).info("refstats: %d images of %d shard(s) in %.1f s -> %s", stats.n, len(paths), seconds, target)
    return {"path": str(target), "n": stats.n, "dim": dim, "skipped": dict(skipped), "seconds": seconds}


class Reservoir:
    """Every row (size None) or a seeded uniform sample of `size` rows from a stream (Algorithm R)."""

    def __init__(self, size: int | None, seed: int = 0) -> None:
        if size is not None and size < 1:
            raise UsageError(f"refstats: max_embeddings must be >= 1, got {size}")
        self.size, self.rng, self.seen = size, np.random.default_rng(seed), 0
        self.ids: list[Any] = []
        self.rows: list[np.ndarray] = []

    def add(self, ids: list[Any], rows: np.ndarray) -> None:
        for ident, row in zip(ids, rows, strict=True):
            if self.size is None or len(self.rows) < self.size:
                self.ids.append(ident)
                self.rows.append(row)
            else:
                j = int(self.rng.integers(0, self.seen + 1))
                if j < self.size:
                    self.ids[j], self.rows[j] = ident, row
            self.seen += 1

    def result(self, dim: int) -> tuple[list[Any], np.ndarray]:
        return self.ids, np.stack(self.rows) if self.rows else np.empty((0, dim), np.float32)


def write_partial(path: Path, stats: Any, embeddings: np.ndarray | None, keys: list[str], tar_idx: list[int],
                  provenance: dict[str, Any]) -> Path:
    """Mergeable partial stats (n, sum, outer in float64, keys, tar_idx, optional embeddings) + sidecar."""
    from gpic_lab.fsio import atomic_path, write_json_atomic

    if path.exists():
        raise GpicError(f"{path}: already exists; refusing to overwrite partial statistics")
    arrays: dict[str, Any] = {"n": np.int64(stats.n), "sum": stats.total, "outer": stats.outer,
                              "key": np.asarray(keys, dtype=str), "tar_idx": np.asarray(tar_idx, dtype=np.int64)}
    if embeddings is not None:
        arrays["dino_embeddings"] = embeddings.astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    write_json_atomic(sidecar(path), {**provenance, "file": path.name, "n": stats.n, "dim": stats.dim,
                                      "members": sorted(arrays), "versions": versions()})
    return path


def merge_partials(parts: list[str], out: str | os.PathLike[str], split: str = "test",
                   max_embeddings: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Combine partial stats from shards/workers into one reference file (mu/sigma equal a single pass).

    Embeddings/keys are concatenated; with `max_embeddings` a uniform sample of the union is drawn (how many from
    each partial by a seeded multivariate hypergeometric over the partials' image counts, then uniformly within
    each partial's own uniform sample).
    """
    from gpic_lab.evaluation.fd import RunningStats

    if not parts:
        raise UsageError("refstats: no partial files to merge")
    loaded = [_load_partial(Path(p)) for p in parts]
    metas = [m for *_, m in loaded]
    models = {m.get("model") for m in metas}
    if len(models) != 1:
        raise UsageError(f"refstats: partials come from different models: {sorted(map(str, models))}")
    all_keys = [k for _, keys, *_ in loaded for k in keys]
    if len(set(all_keys)) != len(all_keys):
        raise UsageError(f"refstats: {len(all_keys) - len(set(all_keys))} key(s) appear in more than one partial")
    total = RunningStats(loaded[0][0].dim)
    for stats, *_ in loaded:
        total = total + stats
    picks = _pick_rows(loaded, max_embeddings, seed)
    keys = [loaded[i][1][j] for i, rows in enumerate(picks) for j in rows]
    tar_idx = [loaded[i][2][j] for i, rows in enumerate(picks) for j in rows]
    have_emb = all(part[3] is not None for part in loaded)
    emb = np.concatenate([loaded[i][3][rows] for i, rows in enumerate(picks)]) if have_emb else None
    model_tag = str(models.pop())
    target = Path(out)
    if target.suffix != ".npz":
        target = target / config_name(split, total.n, model_tag)
    skipped: Counter[str] = Counter()
    for m in metas:
        skipped.update(m.get("skipped", {}))
    prov = {"kind": "gpic-lab refstats merge", "split": split, "parts": [str(p) for p in parts],
            "shards": [s for m in metas for s in m.get("shards", [])], "n_shards": sum(m.get("n_shards", 0) for m in metas),
            "skipped": dict(skipped), "model": model_tag, "preprocess": PREPROCESS_TAG,
            "embeddings": {"rows": len(keys), "of": total.n, "stored": have_emb,
                           "selection": "union of partials" if max_embeddings is None else
                           f"seeded uniform sample of the union (seed {seed})"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_stats(target, total.mean, total.cov, total.n, emb, keys, tar_idx, prov)
    return {"path": str(target), "n": total.n, "dim": total.dim, "parts": len(parts), "rows": len(keys),
            "skipped": dict(skipped)}


def _load_partial(p: Path) -> tuple[Any, list[str], list[int], np.ndarray | None, dict[str, Any]]:
    import json

    from gpic_lab.evaluation.fd import RunningStats

    side = sidecar(p)
    if not p.is_file() or not side.is_file():
        raise UsageError(f"{p}: partial stats file or its sidecar {side.name} is missing")
    with open_npz(p) as data:
        if not {"n", "sum", "outer", "key", "tar_idx"} <= set(data.files):
            raise UsageError(f"{p}: not a partial stats file (members: {sorted(data.files)})")
        stats = RunningStats.from_dict({"n": data.integers("n"), "sum": data.numeric("sum"),
                                        "outer": data.numeric("outer")})
        emb = data.numeric("dino_embeddings").astype(np.float32) if "dino_embeddings" in data.files else None
        return stats, data.text("key").tolist(), data.integers("tar_idx").tolist(), emb, json.loads(side.read_text())


def _pick_rows(loaded: list[Any], max_embeddings: int | None, seed: int) -> list[np.ndarray]:
    rows = [len(keys) for _, keys, *_ in loaded]
    if max_embeddings is None:
        return [np.arange(r) for r in rows]
    rng = np.random.default_rng(seed)
    ns = np.array([stats.n for stats, *_ in loaded])
    m = min(max_embeddings, int(ns.sum()))
    counts = rng.multivariate_hypergeometric(ns, m)
    for part, p_rows, c in zip(loaded, rows, counts, strict=True):
        meta = part[-1]
        if c > p_rows:
            raise UsageError(f"refstats: partial {meta.get('file')} kept {p_rows} rows but {c} are needed; "
                             "build partials with --max-embeddings >= the merged --max-embeddings")
    return [np.sort(rng.choice(r, c, replace=False)) for r, c in zip(rows, counts, strict=True)]
