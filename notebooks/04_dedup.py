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
# # 04 · Near-duplicate removal: calibration, pair grids, collision model, leakage
#
# GPIC's stage 3 embeds every image with SSCD, links pairs with cosine > 0.90, drops the lower-resolution image of
# every pair > 0.9625 and keeps only the highest-resolution image of every connected component of ≥ 5 images;
# exact byte duplicates go first. This notebook runs that rule (`gpic_lab.dedup.rule`) with any encoder of
# `gpic_lab.dedup.embed` and shows what a user needs to choose thresholds by eye:
#
# - the similarity histogram and the most similar pairs in each of GPIC's bins
#   ([0.75,0.85), [0.85,0.9), [0.9,0.95), [0.95,0.9625), [0.9625,0.999), [0.999,1]);
# - duplicate-group sizes and before/after counts by license family and source;
# - the calibration of the encoder's thresholds from the planted copies (`ground_truth.csv`, kind `near-dup`) and
#   precision/recall of the drops against them (every planted copy removed, the original kept, nothing else);
# - train/test leakage: train images too similar to held-out images;
# - the collision model: removals D(N) on nested subsets, D(N) = A·N^β per threshold, extrapolated to 110M images.
#
# - **Inputs:** `shards` (default: the sample train shards plus `raw/gpic_raw_dups.tar`, which holds resized,
#   recompressed, cropped, brightness-shifted and PNG copies of train images and a leaked copy of a test image),
#   `against` (held-out shards), `ground_truth`.
# - **Outputs:** `interim/dedup/decisions.parquet` (+ counts.csv, summary.json, leakage.csv, leakage_keys.json,
#   embed_cache/), `figures/04_dedup/*.png`.
# - **Package functions:** `dedup.run_dedup`, `embed_cache.embed_shards`, `dedup_report.*`, `collision.*`.

# %% tags=["parameters"]
shards: list = ["sample/train", "sample/raw/gpic_raw_dups.tar"]  # shards to deduplicate, relative to the data root
against: list = ["sample/test", "sample/val"]  # held-out shards for the leakage check ([] skips it)
ground_truth: str = "sample/ground_truth.csv"  # planted copies for calibration and scoring ("" when none)
encoder: str = "efficientnet-thumb"  # efficientnet-thumb (CPU, offline) | efficientnet | phash | dhash | sscd | dinov2
weights: str = ""  # weights file/dir for sscd or dinov2, relative to the data root ("" for the others)
link: float = 0.0  # link threshold; 0 = the encoder's calibrated default (dedup.DEFAULTS)
near_dup: float = 0.0  # pair threshold that drops the lower resolution; 0 = the encoder's default
cluster_min: int = 5  # components of at least this many images keep only one
license_aware: bool = False  # prefer the most permissive license before resolution
per_bin: int = 3  # pairs shown per similarity bin
collision_synthetic: int = 20000  # synthetic SSCD-like embeddings for the collision model (0: use this corpus)
collision_thresholds: list = [0.9, 0.9625, 0.99]  # thresholds fitted by the collision model
repeats: int = 5  # random nested orders for the collision band
seed: int = 0  # seed of the collision model

# %%
import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.dedup import collision, embed, embed_cache
from gpic_lab.dedup import report as dedup_report
from gpic_lab.dedup import rule as dedup

STAGE = "04_dedup"
out_dir = paths.interim_dir("dedup")
shard_paths = [paths.resolve_data(s) for s in shards]
held_out = [paths.resolve_data(s) for s in against] or None
gt_path = paths.resolve_data(ground_truth) if ground_truth else None
gt_path = gt_path if gt_path is not None and gt_path.is_file() else None
weights_path = str(paths.resolve_data(weights)) if weights else None
rule = dedup.default_rule(encoder, link=link or None, near_dup=near_dup or None, cluster_min=cluster_min,
                          license_aware=license_aware)
rule

# %% [markdown]
# ## Run the rule (exact-dup → cluster ≥ N → near-dup > T) and the leakage check

# %%
summary = dedup.run_dedup(shard_paths, out_dir / "decisions.parquet", encoder, weights_path, rule, held_out,
                          str(out_dir / "embed_cache"))
decisions = pd.read_parquet(out_dir / "decisions.parquet")
pd.Series(summary["counts"], name="images")

# %%
emb, cache_stats = embed_cache.embed_shards(shard_paths, embed.load_encoder(encoder, weights_path), out_dir / "embed_cache")
decisions[~decisions["keep"]][["key", "reason", "kept_key", "similarity", "width", "height", "component_size"]]

# %% [markdown]
# ## Similarity histogram
# All pairs (nearest neighbours for large corpora). The shaded bands are GPIC's bins; the lines are the rule's
# thresholds for this encoder.

# %%
pairs = dedup_report.all_pairs(emb)
plots.save(dedup_report.plot_histogram(pairs, rule, encoder), STAGE, "similarity_histogram")
dedup_report.bin_counts(pairs)

# %% [markdown]
# ## The most similar pairs in each GPIC bin (choose thresholds by eye)

# %%
plots.save(dedup_report.plot_bin_grid(pairs, shard_paths, per_bin), STAGE, "pairs_per_bin")

# %% [markdown]
# ## Duplicate-group sizes

# %%
groups = dedup_report.cluster_sizes(decisions)
plots.save(dedup_report.plot_cluster_sizes(groups, rule.cluster_min), STAGE, "group_sizes")
groups

# %% [markdown]
# ## Other thresholds, without embedding again
# The pair similarities are stored beside the decisions (`interim/dedup/pairs.parquet`), so the rule can be rerun for
# other thresholds from them alone. Run interactively (JupyterLab), this cell shows a slider for `link`, `near_dup` and
# `cluster_min`: moving one reruns the rule on the stored pairs and shows how many images it drops, per reason, and
# which images change; **Write decisions** saves that table (`interim/dedup-rethreshold/`, parameters in
# `summary.json`) for `gpic-lab pack`. Under `gpic-lab run` the sliders are skipped and the parameters cell decides.
# From a terminal: `gpic-lab rethreshold data/interim/dedup --out DIR -p near_dup=0.97`.

# %%
from IPython.display import display

from gpic_lab.dedup import rethreshold as dedup_rethreshold
from gpic_lab.engine import rethreshold
from gpic_lab.runs import widgets

dedup_rethreshold.write_pairs(out_dir, *dedup_rethreshold.pair_table(emb))
stored, stored_stage, stored_rule = rethreshold.load_stage(out_dir)
assert rethreshold.recompute(stored, stored_stage, {}, stored_rule, out_dir)[1]["changed"] == 0, "pairs do not reproduce"
explorers = [widgets.threshold_explorer(out_dir, dedup_rethreshold.SLIDERS)] if runs.interactive() else []
display(*explorers)

# %% [markdown]
# ## Before / after by license family and source

# %%
dedup_report.before_after(decisions)

# %% [markdown]
# ## Calibration from the planted copies
# Similarity of each planted copy to its original against the most similar pair of distinct images. The defaults
# in `dedup.DEFAULTS` for this encoder must sit between the two; the suggestion is the weakest copy minus a margin.

# %%
calib = dedup_report.calibration(emb, gt_path) if gt_path else pd.DataFrame()
suggested = dedup_report.suggest_thresholds(calib) if len(calib) > 1 else {}
print(suggested)
calib

# %% [markdown]
# ## Precision / recall against the ground truth

# %%
truth = dedup_report.score_against_truth(decisions, gt_path) if gt_path else {}
print(truth)

# %% [markdown]
# ## Leakage: train images too similar to test/val images

# %%
leaks = pd.read_csv(out_dir / "leakage.csv") if held_out else pd.DataFrame()
leaks

# %% [markdown]
# ## Collision model
# Removals D(N) on nested random subsets per threshold, fitted as D(N) = A·N^β and extrapolated to GPIC's
# 110M images; the band is the 5–95 % range of one fit per random order. By default the inputs are synthetic
# SSCD-like embeddings with planted near-duplicate clusters (the sample corpus is too small to fit a curve).
# Read β with care: β ≈ 2 is pairwise ("birthday") growth — the chance that both members of a duplicate group, or
# two distinct images that collide above the threshold, fall in the subset. Projections are capped at D = N. On the
# synthetic default the planted groups are a fixed share of a fixed corpus, so the fits show the machinery, not a
# prediction for GPIC: set `collision_synthetic = 0` and point `shards` at real shards for a real extrapolation.

# %%
model_inputs = collision.inputs(emb, collision_synthetic, min(collision_thresholds), seed)
table = collision.measure(model_inputs["n"], model_inputs["pi"], model_inputs["pj"], model_inputs["psim"],
                          model_inputs["rank"], collision_thresholds, repeats=repeats, cluster_min=cluster_min, seed=seed)
fit = collision.collision_model(table)
plots.save(collision.figure(fit, f"Collision model on {model_inputs['source']}"), STAGE, "collision_model")
fit.fits.round(4)

# %% [markdown]
# ## Invariants

# %%
assert decisions["key"].is_unique and len(decisions) == summary["images"]
assert decisions.loc[decisions["keep"], "reason"].isna().all()
assert decisions.loc[~decisions["keep"], "kept_key"].notna().all()
if truth:
    assert truth["recall"] == 1.0 and truth["distinct_dropped"] == 0, truth
    assert truth["right_survivor"] == truth["planted"], truth
if held_out and gt_path:
    assert summary["leaked_train_images"] >= 1
assert len(fit.fits) == len(collision_thresholds)

# %%
runs.record({"encoder": encoder, "rule": dedup.rule_dict(rule), "images": summary["images"],
             "counts": summary["counts"], "truth": truth, "suggested": suggested,
             "leaked_train_images": summary.get("leaked_train_images", 0),
             "collision": fit.fits[["threshold", "beta", "projected", "low", "high"]].to_dict("records")})
