"""The GPIC evaluation protocol: streaming DINOv2 features of generated images -> FD, PRDC, MMD vs reference stats.

Generated samples are a folder of images, an ADM-style npz (`arr_0`, uint8 [N, H, W, 3]), or an npz of precomputed
`dino_embeddings`. Two input contracts:
- default: images of any size and mode, PNG or JPEG (`.png`, `.jpg`, `.jpeg`), named `{caption_type}_{key}.ext`
  or anything else (the stem is then the key). Each goes through the protocol's own GPIC-256 step (center crop to
  a square, Pillow bicubic to 256x256; a 256x256 RGB image is left as it is) and then DINOv2's 224 resize; what was
  resized, converted to RGB or decoded from JPEG is counted in ``preprocessed``. Undecodable files and repeated
  keys are skipped and counted.
- ``strict=True`` (`gpic-lab eval --strict`): exactly 256x256 RGB PNGs named `{caption_type}_{key}.png` (validated:
  names, sizes, mode, format, duplicate keys), any violation an error: the contract of the official baseline's
  outputs.
OUR ASSUMPTION: GPIC's paper applies center crop + bicubic 256 to real images (App. B.1) and its generated images are
256x256; whether the official toolkit crops submitted images of other sizes is not stated, so we apply the same
GPIC-256 step to them and count it. A warning below 50,000 samples. Decoding + preprocessing run on a thread pool
one batch ahead of batched inference (CUDA when present).
"""
from __future__ import annotations

import io
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.evaluation.features import GEN_SIZE, format_counts, stream_features

RECOMMENDED_N = 50_000
NAME_RE = re.compile(r"^(?P<ctype>[a-z]+)_(?P<key>[0-9A-Za-z][0-9A-Za-z-]*)\.png$")
ANY_NAME_RE = re.compile(r"^(?:(?P<ctype>tag|short|medium|long)_)?(?P<key>.+)\.(?:png|jpe?g)$", re.I)


def iter_generated(samples: str | os.PathLike[str], problems: Counter[str],
                   examples: dict[str, Any] | None = None, strict: bool = True) -> Iterator[tuple[Any, Any]]:
    """((key, caption_type, file), bytes|array) for a folder of images or an ADM npz `arr_0`. Strict: only
    `{caption_type}_{key}.png`; otherwise any `.png/.jpg/.jpeg` (key from `{caption_type}_{key}` or the stem, other
    files counted as `ignored_other`). Name problems are counted (first file per code in `examples`); hidden files
    and subfolders count as `ignored_*`."""
    examples = examples if examples is not None else {}
    from gpic_lab.core.npz import open_npz
    from gpic_lab.shards.schema import CAPTION_TYPES

    p = Path(samples)
    if p.is_dir():
        seen: set[str] = set()
        for f in sorted(p.iterdir()):
            if f.is_dir() or f.name.startswith("."):
                problems["ignored_dir" if f.is_dir() else "ignored_hidden"] += 1
                continue
            m = NAME_RE.match(f.name) if strict else ANY_NAME_RE.match(f.name)
            if not strict and not m:
                problems["ignored_other"] += 1
                continue
            code = None
            if strict and (not m or m.group("ctype") not in CAPTION_TYPES):
                code = "bad_name"
            elif m.group("key") in seen:
                code = "duplicate_key"
            if code:
                problems[code] += 1
                examples.setdefault(code, f.name)
                continue
            seen.add(m.group("key"))
            yield (m.group("key"), m.group("ctype") or "", f.name), f.read_bytes()
    elif p.suffix == ".npz":
        with open_npz(p) as data:
            if "arr_0" not in data.files:
                raise UsageError(f"{p}: npz has no arr_0 image array (members: {data.files})")
            arr = data["arr_0"]
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise UsageError(f"{p}: arr_0 must be uint8 [N, H, W, 3] (256x256 with --strict), got {arr.dtype} {arr.shape}")
        for i in range(len(arr)):
            yield (str(i), "", f"arr_0[{i}]"), arr[i]
    else:
        raise UsageError(f"{p}: not a folder of PNGs or an .npz file")


def _ref_warnings(ref: dict[str, Any], keys: list[str], n: int) -> list[str]:
    warnings = []
    if n < RECOMMENDED_N:
        warnings.append(f"only {n} samples: {RECOMMENDED_N} recommended for a reliable FD-DINOv2 "
                        "(FD is biased upward at small N; compare only at equal counts)")
    if ref.get("keys") is not None and keys and keys[0] != "0":
        ref_keys = set(ref["keys"].tolist())
        unknown = len(set(keys) - ref_keys)
        if unknown:
            warnings.append(f"{unknown} sample key(s) are not in the reference key list")
        elif len(ref_keys) > len(set(keys)):
            warnings.append(f"{len(ref_keys) - len(set(keys))} of the reference's {len(ref_keys)} keys have no sample")
    return warnings


def evaluate(samples: str | os.PathLike[str], ref_npz: str | os.PathLike[str],
             model_path: str | os.PathLike[str] | None = None, model: Any = None, batch_size: int = 64,
             device: str | None = None, dtype: str = "fp32", strict: bool = False, prdc_max: int = 10_000,
             mmd_subsets: int = 100, mmd_subset_size: int = 1000, seed: int = 0,
             threads: int | None = None, save_features: str | os.PathLike[str] | None = None,
             progress: bool | str = False) -> dict[str, Any]:
    """Run the protocol; returns fd, fd_mu, fd_sigma, PRDC, MMD (when the reference has embeddings), counts.

    ``strict``: the 256x256 `{caption_type}_{key}.png` contract, any violation an error; otherwise images of any size
    and PNG/JPEG get the GPIC-256 step, counted in ``preprocessed`` (module docstring).
    `save_features` writes the sample features as an npz (`dino_embeddings`, `key`) usable with `gpic-lab fd`.
    `progress`: images done and rate on stderr (``auto``/``on``/``off`` or a bool, see ``gpic_lab.progress``).
    """
    from gpic_lab.core.npz import open_npz
    from gpic_lab.evaluation.fd import RunningStats, frechet_distance
    from gpic_lab.evaluation.prdc import NEAREST_K, mmd, prdc
    from gpic_lab.evaluation.refstats import read_stats
    from gpic_lab.models.dinov2 import load_dinov2, precision_context, resolve_model, weights_dtype

    ref = read_stats(ref_npz)
    problems: Counter[str] = Counter()
    noted: Counter[str] = Counter()
    examples: dict[str, Any] = {}
    sp = Path(samples)
    pre = None
    if sp.suffix == ".npz" and sp.is_file():
        with open_npz(sp) as data:
            if "dino_embeddings" in data.files:
                pre = data.numeric("dino_embeddings")
    t0 = time.perf_counter()
    if pre is not None:
        feats, keys = pre, [str(i) for i in range(len(pre))]
    else:
        if model is None:
            if model_path is None:
                raise UsageError("eval: --model PATH is required to compute features of images")
            model = load_dinov2(resolve_model(model_path), device=device, dtype=weights_dtype(dtype))
        chunks, keys = [], []
        t0 = time.perf_counter()
        with precision_context(dtype, str(next(model.parameters()).device)):
            for ids, f in stream_features(iter_generated(samples, problems, examples, strict), model, reference=False,
                                          batch_size=batch_size, threads=threads, skipped=problems,
                                          check_generated=strict, examples=examples, any_generated=not strict,
                                          noted=noted, progress=progress, desc="eval features"):
                chunks.append(f.astype(np.float32))
                keys += [i[0] for i in ids]
        feats = np.concatenate(chunks).astype(np.float64) if chunks else np.empty((0, 0))
    invalid = Counter({k: v for k, v in problems.items() if not k.startswith("ignored_")})
    if strict and invalid:
        first = ", ".join(f"{code}: {_name(ex)}" for code, ex in sorted(examples.items()))
        raise GpicError(f"eval: {samples}: invalid samples ({format_counts(invalid)}; first: {first}); fix them or drop "
                        "--strict (any size and PNG/JPEG are then center-cropped and resized to 256, and counted)")
    if len(feats) < 2:
        skipped = f" (skipped: {format_counts(problems)})" if problems else ""
        raise GpicError(f"eval: {samples}: {len(feats)} valid sample(s), FD needs at least 2{skipped}")
    if feats.shape[1] != ref["mu"].shape[0]:
        raise UsageError(f"eval: feature dim {feats.shape[1]} != reference dim {ref['mu'].shape[0]} ({ref_npz}): "
                         "different backbone?")
    extract_s = time.perf_counter() - t0
    if save_features is not None:
        from gpic_lab.fsio import atomic_path

        with atomic_path(save_features) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, dino_embeddings=feats.astype(np.float32), key=np.asarray(keys, dtype=str))
    stats = RunningStats(feats.shape[1]).update(feats)
    result: dict[str, Any] = dict(frechet_distance(stats.mean, stats.cov, ref["mu"], ref["sigma"]))
    notes = []
    if ref["embeddings"] is None:
        notes.append("reference has no dino_embeddings: PRDC and MMD not computed")
    elif min(len(feats), len(ref["embeddings"])) <= NEAREST_K:
        notes.append(f"PRDC and MMD not computed: need more than k={NEAREST_K} samples per side")
    else:
        result.update(prdc(ref["embeddings"], feats, max_n=prdc_max, seed=seed))
        result.update(mmd(ref["embeddings"], feats, subsets=mmd_subsets, subset_size=mmd_subset_size, seed=seed))
    result.update({"n_samples": len(feats), "n_ref": ref["n"], "dim": int(feats.shape[1]), "samples": str(samples),
                   "ref": str(ref_npz), "model": str(model_path) if model_path else None, "dtype": dtype,
                   "skipped": dict(problems), "strict": strict, "preprocessed": dict(noted),
                   "warnings": notes + _preprocess_warnings(noted, problems) + _ref_warnings(ref, keys, len(feats)),
                   "extract_seconds": round(extract_s, 3),
                   "images_per_s": round(len(feats) / max(extract_s, 1e-9), 2) if pre is None else None})
    return result


def _preprocess_warnings(noted: Counter[str], problems: Counter[str]) -> list[str]:
    """What the non-strict contract did to the inputs, one line each."""
    out = []
    if noted.get("resized_to_256"):
        out.append(f"{noted['resized_to_256']} image(s) were not 256x256: center-cropped and bicubic-resized to 256 "
                   "(the protocol's GPIC-256 step) before DINOv2")
    if noted.get("jpeg"):
        out.append(f"{noted['jpeg']} JPEG image(s): lossy artefacts change the features; the baseline writes PNGs")
    skipped = {k: v for k, v in problems.items() if not k.startswith("ignored_")}
    if skipped:
        out.append(f"skipped: {format_counts(Counter(skipped))}")
    return out


def _name(example: Any) -> str:
    return str(example[-1]) if isinstance(example, tuple) else str(example)


def make_standins(shards: list[str], out_dir: str | os.PathLike[str], per_image: int = 4, seed: int = 0,
                  scale: tuple[float, float] = (0.5, 1.0)) -> dict[str, Any]:
    """Stand-ins for generated images: seeded random square crops (+ flips) of real images, 256x256 RGB PNGs
    named `{caption_type}_{key}-{j}.png`. Not a generator: a labelled placeholder for exercising the protocol."""
    from PIL import Image

    from gpic_lab.fsio import write_bytes_atomic
    from gpic_lab.shards.reader import iter_samples, list_shards

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for sample in iter_samples(list_shards(shards)):
        with sample.open_image() as im:
            img = im.convert("RGB")
        w, h = img.size
        ctype = sample.meta.get("caption_type") or "medium"
        for j in range(per_image):
            side = int(min(w, h) * rng.uniform(*scale))
            left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = img.crop((left, top, left + side, top + side)).resize(GEN_SIZE, Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            buf = io.BytesIO()
            crop.save(buf, "PNG")
            write_bytes_atomic(out / f"{ctype}_{sample.key}-{j}.png", buf.getvalue())
            written += 1
    return {"dir": str(out), "written": written}


def compare(real: np.ndarray, fake: np.ndarray, seed: int = 0, mmd_subsets: int = 100) -> dict[str, float]:
    """FD (fd, fd_mu, fd_sigma), PRDC and MMD of two feature arrays (PRDC/MMD when more than k per side)."""
    from gpic_lab.evaluation.fd import fd_from_features
    from gpic_lab.evaluation.prdc import NEAREST_K, mmd, prdc

    res: dict[str, Any] = {k: v for k, v in fd_from_features(fake, real).items() if k != "eps_fallback"}
    res["n_samples"] = len(fake)
    if min(len(real), len(fake)) > NEAREST_K:
        p = prdc(real, fake, seed=seed)
        res.update({k: p[k] for k in ("precision", "recall", "density", "coverage")})
        res["mmd"] = mmd(real, fake, subsets=mmd_subsets, seed=seed)["mmd"]
    return res


def oracle_table(ref_feats: np.ndarray, others: dict[str, np.ndarray] | None = None, fractions: tuple[float, ...] =
                 (0.5, 0.25), seed: int = 0) -> Any:
    """Real-vs-real noise floor in the style of GPIC Table 2: random subsets of the reference vs the rest, and
    other real sets (e.g. val/test images) vs the whole reference. One row per subset (pandas DataFrame)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for frac in fractions:
        n = int(round(len(ref_feats) * frac))
        if n < 2 or len(ref_feats) - n < 2:
            raise UsageError(f"eval: subset fraction {frac} of {len(ref_feats)} reference images is too small")
        idx = rng.permutation(len(ref_feats))
        rows.append({"subset": f"random {frac:.0%} of reference vs the rest", "n_subset": n,
                     "n_against": len(ref_feats) - n, **compare(ref_feats[idx[n:]], ref_feats[idx[:n]], seed)})
    for name, feats in (others or {}).items():
        rows.append({"subset": f"{name} vs reference", "n_subset": len(feats), "n_against": len(ref_feats),
                     **compare(ref_feats, feats, seed)})
    return pd.DataFrame(rows)


def metric_table(results: dict[str, dict[str, Any]]) -> Any:
    """One row per evaluated set with the GPIC metric columns (pandas DataFrame)."""
    import pandas as pd

    cols = ["n_samples", "fd", "fd_mu", "fd_sigma", "precision", "recall", "density", "coverage", "mmd"]
    return pd.DataFrame([{"set": name, **{c: r.get(c) for c in cols}} for name, r in results.items()])


def plot_fd_split(*tables: Any, title: str = "FD = FD_μ + FD_Σ") -> Any:
    """Stacked horizontal bars of fd_mu and fd_sigma per row of tables labelled by a `set` or `subset` column."""
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.concat([t.rename(columns={"subset": "set"})[["set", "fd_mu", "fd_sigma"]] for t in tables],
                      ignore_index=True)
    label = "set"
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(table) + 1.5))
    y = np.arange(len(table))
    ax.barh(y, table["fd_mu"], color="#4c72b0", label="FD_μ = ||μ1-μ2||²")
    ax.barh(y, table["fd_sigma"], left=table["fd_mu"], color="#dd8452", label="FD_Σ = Tr(Σ1+Σ2-2(Σ1Σ2)^½)")
    ax.set_yticks(y, table[label])
    ax.invert_yaxis()
    ax.set_xlabel("Fréchet distance (DINOv2 feature space)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_fd_curve(curves: dict[str, list[dict[str, float]]], title: str = "FD vs sample count") -> Any:
    """Mean ± std of FD over repeats per subset size, one line per named curve (rows from fd.fd_curve)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in curves.items():
        g = pd.DataFrame(rows).groupby("n")["fd"].agg(["mean", "std"]).reset_index()
        ax.errorbar(g["n"], g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of samples N (log scale)")
    ax.set_ylabel("FD vs reference")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
