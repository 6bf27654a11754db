"""Reference statistics files in GPIC's npz layout: dino_mu, dino_sigma, optional dino_embeddings, key, tar_idx.

Files we write are named by their full configuration (split, count, backbone + weights digest, preprocessing,
precision), are written once (refusing to overwrite) and get a sidecar `<name>.json` with provenance (shards,
counts, skipped members by reason, package versions). `read_stats` also reads the official GPIC
`test_stats.npz` / `val_stats.npz` and any npz holding only `dino_embeddings`.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError

PREPROCESS_TAG = "crop-pilbicubic256-stretch224-imagenet"


def config_name(split: str, n: int, model_tag: str, dtype: str = "fp32") -> str:
    """e.g. `gpic-test_n1000000_dinov2-vitl14-ab12cd34_crop-pilbicubic256-stretch224-imagenet_fp32.npz`."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{split}")
    return f"gpic-{safe}_n{n}_{model_tag}_{PREPROCESS_TAG}_{dtype}.npz"


def _load_member(data: Any, name: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(data[name])
    except ValueError:  # object arrays (e.g. a pickled key list) need allow_pickle
        with np.load(path, allow_pickle=True) as again:
            return np.asarray(again[name]).astype(str)


def read_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """mu, sigma (float64), embeddings (or None), keys (or None), tar_idx (or None), n, path.

    Accepts dino_mu + dino_sigma and/or dino_embeddings; mu/sigma come from the embeddings when absent.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: stats file not found")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable npz is a usage error
        raise UsageError(f"{p}: not a readable npz file ({exc})") from exc
    with data:
        names = set(data.files)
        emb = _load_member(data, "dino_embeddings", p).astype(np.float64) if "dino_embeddings" in names else None
        if {"dino_mu", "dino_sigma"} <= names:
            mu = _load_member(data, "dino_mu", p).astype(np.float64)
            sigma = _load_member(data, "dino_sigma", p).astype(np.float64)
        elif emb is not None:
            from gpic_lab.fd import stats_from_features

            mu, sigma = stats_from_features(emb)
        else:
            raise UsageError(f"{p}: holds neither dino_mu+dino_sigma nor dino_embeddings (members: {sorted(names)})")
        keys = _load_member(data, "key", p).astype(str) if "key" in names else None
        tar_idx = _load_member(data, "tar_idx", p) if "tar_idx" in names else None
        n = int(_load_member(data, "n", p)) if "n" in names else (len(emb) if emb is not None else None)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UsageError(f"{p}: dino_mu {mu.shape} and dino_sigma {sigma.shape} are inconsistent")
    return {"mu": mu, "sigma": sigma, "embeddings": emb, "keys": keys, "tar_idx": tar_idx, "n": n, "path": str(p)}


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
                   partial: bool = False) -> dict[str, Any]:
    """Stream shards -> GPIC-256 -> DINOv2 features -> running stats; write a config-named npz under `out`.

    `out` is a directory (the file is named by `config_name`) or an explicit .npz path. Undecodable images are
    skipped and counted by reason in the sidecar (never silently). With `reuse`, an existing file of the same
    configuration built from the same shards is returned instead (files are never overwritten). With `partial`,
    a mergeable partial file (n, sum, outer) is written instead; combine partials with `merge_partials`.
    """
    from gpic_lab.evaluate import stream_features
    from gpic_lab.fd import RunningStats
    from gpic_lab.shards import iter_samples, list_shards

    paths = list_shards(shards)
    if reuse:
        found = find_existing(out, split, model_tag, paths)
        if found is not None:
            return found
    if Path(out).suffix == ".npz" and Path(out).exists():
        raise GpicError(f"{out}: already exists; refusing to overwrite {'partial' if partial else 'reference'} "
                        "statistics")
    dim = int(model.config.hidden_size)
    stats, keys, tar_idx, embs = RunningStats(dim), [], [], []
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
                                      skipped=skipped):
        stats.update(feats)
        keys += [k for k, _ in ids]
        tar_idx += [t for _, t in ids]
        if keep_embeddings:
            embs.append(feats.astype(np.float32))
    if stats.n < (1 if partial else 2):
        raise GpicError(f"refstats: only {stats.n} image(s) decoded from {len(paths)} shard(s)")
    seconds = time.perf_counter() - t0
    prov = {"kind": "gpic-lab refstats" + (" partial" if partial else ""), "split": split,
            "shards": [str(p) for p in paths], "n_shards": len(paths), "skipped": dict(skipped), "model": model_tag,
            "preprocess": PREPROCESS_TAG, "seconds": round(seconds, 3),
            "images_per_s": round(stats.n / max(seconds, 1e-9), 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emb = np.concatenate(embs) if embs else None
    target = Path(out)
    if target.suffix != ".npz":
        name = config_name(split, stats.n, model_tag)
        target = target / (f"partial-{paths[0].rsplit('/', 1)[-1].removesuffix('.tar')}_{name}" if partial else name)
    if partial:
        write_partial(target, stats, emb, keys, tar_idx, prov)
    else:
        write_stats(target, stats.mean, stats.cov, stats.n, emb, keys, tar_idx, prov)
    return {"path": str(target), "n": stats.n, "dim": dim, "skipped": dict(skipped), "seconds": seconds}


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


def merge_partials(parts: list[str], out: str | os.PathLike[str], split: str = "test") -> dict[str, Any]:
    """Combine partial stats from shards/workers into one reference file (same result as a single pass)."""
    import json

    from gpic_lab.fd import RunningStats

    if not parts:
        raise UsageError("refstats: no partial files to merge")
    total: RunningStats | None = None
    keys: list[str] = []
    tar_idx: list[int] = []
    embs: list[np.ndarray] | None = []
    metas = []
    for part in parts:
        p = Path(part)
        side = sidecar(p)
        if not p.is_file() or not side.is_file():
            raise UsageError(f"{p}: partial stats file or its sidecar {side.name} is missing")
        with np.load(p, allow_pickle=False) as data:
            if not {"n", "sum", "outer", "key", "tar_idx"} <= set(data.files):
                raise UsageError(f"{p}: not a partial stats file (members: {sorted(data.files)})")
            stats = RunningStats.from_dict({"n": data["n"], "sum": data["sum"], "outer": data["outer"]})
            keys += data["key"].astype(str).tolist()
            tar_idx += data["tar_idx"].tolist()
            if embs is not None and "dino_embeddings" in data.files:
                embs.append(data["dino_embeddings"])
            else:
                embs = None
        total = stats if total is None else total + stats
        metas.append(json.loads(side.read_text()))
    models = {m.get("model") for m in metas}
    if len(models) != 1:
        raise UsageError(f"refstats: partials come from different models: {sorted(map(str, models))}")
    if len(set(keys)) != len(keys):
        raise UsageError(f"refstats: {len(keys) - len(set(keys))} key(s) appear in more than one partial")
    assert total is not None
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
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_stats(target, total.mean, total.cov, total.n, np.concatenate(embs) if embs else None, keys, tar_idx, prov)
    return {"path": str(target), "n": total.n, "dim": total.dim, "parts": len(parts), "skipped": dict(skipped)}
