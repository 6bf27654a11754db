# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (gpic_lab)
#     language: python
#     name: gpic-lab
# ---

# %% [markdown]
# # 07 · FD-DINOv2 evaluation (GPIC protocol), with GPIC's published numbers beside ours
#
# GPIC's primary metric is the Fréchet distance between DINOv2 ViT-L/14 (no registers) CLS features of 50K generated
# images and reference statistics of the **held-out 1M test set** (never train statistics), plus precision / recall /
# density / coverage and MMD on the same features. This notebook runs the whole protocol on the sample corpus:
#
# 1. reference statistics from the test split only (GPIC-256: center crop + Pillow bicubic 256, then the 224 stretch),
# 2. evaluation of a folder of 256×256 `{caption_type}_{key}.png` "generated" stand-ins made from train and val
#    images, so they are disjoint from the reference, as GPIC requires,
# 3. the metric table beside **GPIC Table 3** (the JiT-T2I baseline after one epoch) and the FD_μ / FD_Σ split,
# 4. real-vs-real rows in the style of **GPIC Table 2** (real train and val images against the test reference) beside
#    GPIC's Table 2,
# 5. FD vs sample count (the small-N bias: only compare FD at equal N; GPIC uses 50,000).
#
# > **Placeholder model, tiny sample.** No DINOv2 weights exist on this machine, so by default `model_path = "tiny"`
# > builds a *tiny random* DINOv2 with the hub geometry (518 px, patch 14, 37×37 position grid, hub interpolation) but
# > 32-d features. The sample's test split holds 2 images, so the reference covariance has rank 1 and PRDC/MMD (k = 5
# > nearest neighbours) cannot be computed against it. Our numbers here exercise the pipeline; they are **not**
# > comparable with GPIC's. The caveats under the tables say what would have to hold. Pass real weights with
# > `-p model_path /path/to/dinov2_vitl14_pretrain.pth` and point `ref_shards` at real test shards for real numbers.
#
# - **Inputs:** `ref_shards` (held-out test shards), `gen_shards` (shards the stand-ins are cropped from, disjoint from
#   the reference), `model_path`.
# - **Fan-out:** the reference statistics are built from per-range partial files (`partials/`). With
#   `shard_range = "START:STOP"` (`gpic-lab run ... --fan-out shard_range=0:128:16 --gpus ...`) this run computes the
#   partial of that range of the sorted `ref_shards` list and evaluates against that range's statistics
#   (`ranges/<START>-<STOP>/`); the run without `shard_range` merges every range's partial (computing only shards no
#   range covered) into the reference of all shards — mu and sigma equal one pass over them.
# - **Outputs:** `data/interim/eval/` (reference npz + provenance JSON, `eval_prompts.jsonl`, `generated/` PNGs,
#   `generated_features.npz`, `results.json`), `figures/07_eval_fd_dinov2/*.png`, run metrics.
# - **Package:** `gpic_lab.models.dinov2`, `gpic_lab.evaluation.refstats`, `gpic_lab.evaluation.eval_prompts`,
#   `gpic_lab.evaluation.evaluate`, `gpic_lab.evaluation.fd`, `gpic_lab.evaluation.prdc`,
#   `gpic_lab.evaluation.published` (GPIC's Tables 2 and 3).

# %% tags=["parameters"]
ref_shards: str = "sample/test"  # held-out test shards (dirs/files/globs) for the reference (never train), data-root relative
shard_range: str = ""  # "START:STOP" of the sorted `ref_shards` list (one fan-out range); "": every shard
gen_shards: str = "sample/train,sample/val"  # real shards the stand-ins are cropped from (disjoint from the reference)
per_image: int = 16  # stand-ins written per source image
model_path: str = "tiny"  # 'tiny' = random placeholder; else a hub .pth or transformers dir of DINOv2 ViT-L/14
batch_size: int = 32  # images per forward pass
curve_sizes: str = "4,8,16,32,64"  # subset sizes for the FD-vs-N curve, comma-separated (sizes above a set's count skipped)
curve_repeats: int = 5  # random subsets per size
seed: int = 0  # seed for stand-ins, subsets, PRDC and MMD

# %%
import json

import pandas as pd

from gpic_lab import fsio, paths, plots, runs
from gpic_lab.evaluation import eval_prompts, evaluate, fd, features, published, refparts, refstats
from gpic_lab.models import dinov2
from gpic_lab.shards import sources

out_dir = paths.interim_dir("eval")
ref_dirs = sources.expand([str(paths.resolve_data(p)) for p in sources.split_list(ref_shards)])
gen_dirs = [str(paths.resolve_data(p.strip())) for p in gen_shards.split(",") if p.strip()]
sizes = [int(s) for s in curve_sizes.split(",") if s.strip()]
weights = dinov2.resolve_model(model_path, cache=out_dir / "models")
tag = dinov2.model_tag(weights)
model = dinov2.load_dinov2(weights)
print(f"model {tag} ({'PLACEHOLDER: tiny random weights' if 'tiny' in tag else 'real weights'}); "
      f"{model.config.hidden_size}-d features; device {model.device}")

# %% [markdown]
# ## 1 · Reference statistics from the held-out test split
# Streams the shards (never a full feature matrix in memory for mu/sigma), writes GPIC's npz layout (`dino_mu`,
# `dino_sigma`, `dino_embeddings`, `key`, `tar_idx`) named by the full configuration, and a provenance sidecar.
# The shards stream into mergeable partial files (one per fan-out range); partials of earlier ranges and an existing
# file of the same configuration and shards are reused (stats files are never overwritten).

# %%
ref = refparts.reference(ref_dirs, model, out_dir, split="sample-test", model_tag=tag, shard_range=shard_range,
                         batch_size=batch_size)
ref_stats = refstats.read_stats(ref["path"])
json.loads(refstats.sidecar(ref["path"]).read_text())

# %% [markdown]
# ## 2 · The eval captions for the reference keys
# `gpic-lab eval-prompts` writes (key, caption, caption_type) in the npz's key order, reading only JSON members; with
# the official `test_stats.npz` this is GPIC's fixed 50K caption set. Here: the keys of the sample reference.

# %%
prompt_counts = eval_prompts.write_eval_prompts(ref_dirs, ref["path"], out_dir / "eval_prompts.jsonl")
pd.read_json(out_dir / "eval_prompts.jsonl", lines=True).head(5)

# %% [markdown]
# ## 3 · "Generated" stand-ins: 256×256 PNGs named `{caption_type}_{key}.png`, from images outside the reference

# %%
standins = evaluate.make_standins(gen_dirs, out_dir / "generated", per_image=per_image, seed=seed)
ref_keys = set(ref_stats["keys"].tolist())
overlap = sorted({f.name.split("_", 1)[1].rsplit("-", 1)[0] for f in (out_dir / "generated").iterdir()} & ref_keys)
print(f"{standins['written']} stand-ins; source images shared with the reference: {len(overlap)}")

# %% [markdown]
# ## 4 · Evaluate the folder against the reference
# Accepts any size and PNG or JPEG (the protocol's GPIC-256 step is applied and counted); `strict=True`
# (`gpic-lab eval --strict`) enforces the 256×256 `{caption_type}_{key}.png` contract. Warns below 50,000 samples.

# %%
result = evaluate.evaluate(out_dir / "generated", ref["path"], model=model, batch_size=batch_size, seed=seed,
                           save_features=out_dir / "generated_features.npz")
fsio.write_json_atomic(out_dir / "results.json", result)
result["warnings"]

# %% [markdown]
# ## 5 · Our metrics beside GPIC Table 3
# FD ↓, precision ↑ / density ↑ (fidelity), recall ↑ / coverage ↑ (diversity). GPIC's rows: the JiT-T2I baseline
# (1.1B, one epoch on GPIC-Full, Euler 50 steps) at three CFG scales, 50K samples vs Test-1M. Empty cells: metrics
# that cannot be computed here (PRDC needs more than k = 5 reference images).

# %%
metrics = evaluate.metric_table({f"stand-ins, crops of train/val ({tag})": result})
table3 = published.beside(metrics, published.table3(), "ours (sample corpus)")
print("Caveats before reading ours against GPIC's:\n- " + "\n- ".join(published.CAVEATS))
table3

# %% [markdown]
# ## 6 · Real-vs-real rows beside GPIC Table 2 (the noise floor)
# Real train and val images (disjoint from the reference) against the test reference, as GPIC's Table 2 puts its
# Full / Lite / Nano / Val subsets against Test-1M. A model cannot be expected to beat these at the same N; GPIC's
# floor for 50K real test images vs Test-1M is FD 7.44 (ViT-L/14).

# %%
real = {f"real {d.rsplit('/', 1)[-1]} images": features.shard_features([d], model, batch_size=batch_size)[1]
        for d in gen_dirs}
oracle = evaluate.oracle_table(ref_stats["embeddings"], real, fractions=(0.5,) if ref["n"] >= 4 else (), seed=seed)
table2 = published.beside(oracle, published.table2(), "ours (sample corpus)")
table2

# %% [markdown]
# ## 7 · FD_μ vs FD_Σ
# The covariance term dominates real-vs-real FD (GPIC Table B.2); a large FD_μ means the mean feature moved.

# %%
plots.save(evaluate.plot_fd_split(metrics, oracle, title=f"FD = FD_μ + FD_Σ  ({tag})"), "07_eval_fd_dinov2",
           "fd_split")

# %% [markdown]
# ## 8 · FD vs sample count (small-N bias)
# FD of random subsets of the stand-ins and of the real train/val images against the reference statistics. FD is
# biased upward at small N, so FD values are only comparable at equal sample counts.

# %%
gen_feats = refstats.read_stats(out_dir / "generated_features.npz")["embeddings"]
curves = {name: fd.fd_curve(x, ref_stats["mu"], ref_stats["sigma"], [n for n in sizes if 2 <= n <= len(x)],
                            curve_repeats, seed)
          for name, x in {"stand-ins": gen_feats, **real}.items() if any(2 <= n <= len(x) for n in sizes)}
plots.save(evaluate.plot_fd_curve(curves, title=f"FD vs sample count ({tag})"), "07_eval_fd_dinov2", "fd_vs_n")

# %% [markdown]
# ## Invariants

# %%
assert prompt_counts["missing"] == 0 and prompt_counts["found"] == ref["n"]
assert ref["n"] == len(ref_stats["embeddings"]) and ref_stats["sigma"].shape == (model.config.hidden_size,) * 2
assert not overlap, "stand-ins must not come from reference images"
assert result["n_samples"] == standins["written"] and result["skipped"] == {}
assert abs(result["fd"] - (result["fd_mu"] + result["fd_sigma"])) < 1e-9 and result["fd"] >= 0
assert result.get("precision") is None or (0 <= result["precision"] <= 1 and 0 <= result["coverage"] <= 1)
assert set(published.table3()["set"]) <= set(table3["set"]) and set(published.table2()["set"]) <= set(table2["set"])
assert all(len(rows) % curve_repeats == 0 and rows for rows in curves.values())

# %%
runs.record({"shard_range": shard_range, "ref_partials": len(ref["partials"]), "eval_model": tag, "eval_placeholder_model": "tiny" in tag, "eval_ref_n": ref["n"],
             "eval_ref_shards": ref_shards, "eval_n_samples": result["n_samples"], "eval_fd": result["fd"],
             "eval_fd_mu": result["fd_mu"], "eval_fd_sigma": result["fd_sigma"],
             "eval_precision": result.get("precision"), "eval_recall": result.get("recall"),
             "eval_density": result.get("density"), "eval_coverage": result.get("coverage"),
             "eval_mmd": result.get("mmd"), "eval_oracle_fd": oracle["fd"].tolist(),
             "gpic_table3_fd": published.table3()["fd"].tolist()})
