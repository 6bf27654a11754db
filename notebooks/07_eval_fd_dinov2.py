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
# # 07 · FD-DINOv2 evaluation (GPIC protocol)
#
# GPIC's primary metric is the Fréchet distance between DINOv2 ViT-L/14 (no registers) CLS features of 50K generated
# images and reference statistics of the 1M test set, plus precision / recall / density / coverage and MMD on the same
# features. This notebook runs the whole protocol on the sample corpus:
#
# 1. reference statistics from real shards (GPIC-256: center crop + Pillow bicubic 256, then the 224 stretch),
# 2. evaluation of a folder of 256×256 `{caption_type}_{key}.png` "generated" images,
# 3. the metric table and the FD_μ / FD_Σ split,
# 4. a real-vs-real oracle table in the style of GPIC Table 2 (the noise floor),
# 5. FD vs sample count (the small-N bias: only compare FD at equal N; GPIC uses 50,000).
#
# > **Placeholder model.** No DINOv2 weights exist on this machine, so by default `model_path = "tiny"` builds a
# > *tiny random* DINOv2 with the hub geometry (518 px, patch 14, 37×37 position grid, hub interpolation) but 32-d
# > features. Its numbers exercise the pipeline; they are **not** FD-DINOv2 values. Pass real weights with
# > `-p model_path /path/to/dinov2_vitl14_pretrain.pth` (or a transformers directory) for real numbers.
# > The "generated" images are seeded random crops of real val/test images made by `evaluate.make_standins`.
#
# - **Inputs:** `ref_shards`, `gen_shards` (shard dirs relative to the data root), `model_path`.
# - **Fan-out:** the reference statistics are built from per-range partial files (`partials/`). With
#   `shard_range = "START:STOP"` (`gpic-lab run ... --fan-out shard_range=0:80:10 --gpus ...`) this run computes the
#   partial of that range of the sorted `ref_shards` list and evaluates against that range's statistics
#   (`ranges/<START>-<STOP>/`); the run without `shard_range` merges every range's partial (computing only shards no
#   range covered) into the reference of all shards — mu and sigma equal one pass over them.
# - **Outputs:** `data/interim/eval/` (reference npz + provenance JSON, `eval_prompts.jsonl`, `generated/` PNGs,
#   `generated_features.npz`, `results.json`),
#   `figures/07_eval_fd_dinov2/*.png`, run metrics.
# - **Package:** `gpic_lab.models.dinov2`, `gpic_lab.evaluation.refstats`, `gpic_lab.evaluation.eval_prompts`, `gpic_lab.evaluation.evaluate`, `gpic_lab.evaluation.fd`,
#   `gpic_lab.evaluation.prdc`.

# %% tags=["parameters"]
ref_shards: str = "sample/train,sample/raw"  # real shards (dirs/files/globs) for the reference statistics, data-root relative
shard_range: str = ""  # "START:STOP" of the sorted `ref_shards` list (one fan-out range); "": every shard
gen_shards: str = "sample/val,sample/test"  # real shards the generated stand-ins are cropped from
per_image: int = 16  # stand-ins written per source image
model_path: str = "tiny"  # 'tiny' = random placeholder; else a hub .pth or transformers dir of DINOv2 ViT-L/14
batch_size: int = 32  # images per forward pass
curve_sizes: str = "8,16,32,50"  # subset sizes for the FD-vs-N curve, comma-separated
curve_repeats: int = 5  # random subsets per size
seed: int = 0  # seed for stand-ins, subsets, PRDC and MMD

# %%
import json

import pandas as pd

from gpic_lab import fsio, paths, plots, runs
from gpic_lab.evaluation import eval_prompts, evaluate, fd, features, refparts, refstats
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
# ## 1 · Reference statistics from shards
# Streams the shards (never a full feature matrix in memory for mu/sigma) into mergeable partial files, merges them
# into GPIC's npz layout (`dino_mu`, `dino_sigma`, `dino_embeddings`, `key`, `tar_idx`) named by the full
# configuration, with a provenance sidecar. Partials of earlier ranges and an existing file of the same configuration
# and shards are reused (stats files are never overwritten).

# %%
ref = refparts.reference(ref_dirs, model, out_dir, split="sample-ref", model_tag=tag, shard_range=shard_range,
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
# ## 3 · "Generated" images: 256×256 PNGs named `{caption_type}_{key}.png`

# %%
standins = evaluate.make_standins(gen_dirs, out_dir / "generated", per_image=per_image, seed=seed)
standins

# %% [markdown]
# ## 4 · Evaluate the folder against the reference
# Validates names, sizes (256×256), RGB mode and duplicate keys; warns below 50,000 samples.

# %%
result = evaluate.evaluate(out_dir / "generated", ref["path"], model=model, batch_size=batch_size, seed=seed,
                           save_features=out_dir / "generated_features.npz")
fsio.write_json_atomic(out_dir / "results.json", result)
result["warnings"]

# %% [markdown]
# ## 5 · Metric table
# FD ↓, precision ↑ / density ↑ (fidelity), recall ↑ / coverage ↑ (diversity), MMD ↓. Compare with GPIC Table 3 only
# when the backbone is the real ViT-L/14 and N = 50,000.

# %%
real_keys, real_feats = features.shard_features(gen_dirs, model, batch_size=batch_size)
metrics = evaluate.metric_table({"stand-ins (crops of val/test)": result})
metrics

# %% [markdown]
# ## 6 · Real-vs-real oracle (noise floor, cf. GPIC Table 2)
# Random subsets of the reference against the rest (disjoint), and the real val/test images the stand-ins were cropped
# from against the whole reference. A model cannot be expected to beat these at the same N; GPIC's Table 2 floor for
# 50K real test images vs Test-1M is FD 7.44 (ViT-L/14).

# %%
oracle = evaluate.oracle_table(ref_stats["embeddings"], {"real val/test": real_feats}, seed=seed)
oracle

# %% [markdown]
# ## 7 · FD_μ vs FD_Σ
# The covariance term dominates real-vs-real FD (GPIC Table B.2); a large FD_μ means the mean feature moved.

# %%
plots.save(evaluate.plot_fd_split(metrics, oracle, title=f"FD = FD_μ + FD_Σ  ({tag})"), "07_eval_fd_dinov2",
           "fd_split")

# %% [markdown]
# ## 8 · FD vs sample count (small-N bias)
# FD of random subsets of the stand-ins (and of the reference itself) against the full reference statistics. FD is
# biased upward at small N, so FD values are only comparable at equal sample counts.

# %%
gen_feats = refstats.read_stats(out_dir / "generated_features.npz")["embeddings"]
curves = {"stand-ins": fd.fd_curve(gen_feats, ref_stats["mu"], ref_stats["sigma"], sizes, curve_repeats, seed),
          "reference subsets (overlap the reference)": fd.fd_curve(  # a shard range's reference may be small
              ref_stats["embeddings"], ref_stats["mu"], ref_stats["sigma"],
              [n for n in sizes if n <= len(ref_stats["embeddings"])], curve_repeats, seed)}
plots.save(evaluate.plot_fd_curve(curves, title=f"FD vs sample count ({tag})"), "07_eval_fd_dinov2", "fd_vs_n")

# %% [markdown]
# ## Invariants

# %%
assert prompt_counts["missing"] == 0 and prompt_counts["found"] == ref["n"]
assert ref["n"] == len(ref_stats["embeddings"]) and ref_stats["sigma"].shape == (model.config.hidden_size,) * 2
assert result["n_samples"] == standins["written"] and result["skipped"] == {}
assert abs(result["fd"] - (result["fd_mu"] + result["fd_sigma"])) < 1e-9 and result["fd"] >= 0
assert 0 <= result["precision"] <= 1 and 0 <= result["coverage"] <= 1
curve_means = {name: [r["fd"] for r in rows if r["n"] == sizes[0]] for name, rows in curves.items()}
assert all(len(v) == curve_repeats for v in curve_means.values())

# %%
runs.record({"shard_range": shard_range, "ref_partials": len(ref["partials"]),
             "eval_model": tag, "eval_placeholder_model": "tiny" in tag, "eval_ref_n": ref["n"],
             "eval_n_samples": result["n_samples"], "eval_fd": result["fd"], "eval_fd_mu": result["fd_mu"],
             "eval_fd_sigma": result["fd_sigma"], "eval_precision": result["precision"],
             "eval_recall": result["recall"], "eval_density": result["density"], "eval_coverage": result["coverage"],
             "eval_mmd": result["mmd"], "eval_oracle_fd": oracle["fd"].tolist()})
