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
# # 03 · Quality and safety filters
#
# GPIC's stage 2 removed extreme resolutions/aspect ratios, images whose longest side is < 256 px, ~0.3% of images
# with a Qwen3-VL-4B **quality** filter (near-blank, severe blur, under-/over-exposure, little content) and ~0.35%
# with a conservative Qwen3-VL-4B **safety** filter. This notebook runs, through the stage engine:
#
# - `quality` — the heuristic filter (`gpic_lab.filters.quality`: GPIC's geometry rules + named thresholds for exposure,
#   near-blank and blur, on reduced-size JPEG decodes);
# - `safety-cpu` — a **CPU stand-in** for the safety judge: NudeNet's 320n ONNX detector shipped in the `nudenet`
#   wheel. It detects nudity only; it is *not* GPIC's safety filter and is reported as a stand-in everywhere;
# - `vlm-judge` — only when `judge_model` names a Qwen3-VL model (local dir or HF cache) and a GPU is present.
#
# The sample corpus's planted low-quality images (`ground_truth.csv`, kind `quality`) must be caught with the
# planted reason; the confusion table shows every other decision too.
#
# - **Inputs:** `shards` (shard dirs relative to the data root), `ground_truth`.
# - **Outputs:** `interim/quality/`, `interim/safety-cpu/` (and `interim/vlm-judge/`): decisions.parquet,
#   counts.csv, reasons.csv, summary.json, done markers; figures under `figures/03_quality_safety_filter/`; metrics.
# - **Fan-out:** with `shard_range = "START:STOP"` (`gpic-lab run ... --fan-out shard_range=0:8000:100 --gpus ...`,
#   worth it for the GPU `vlm-judge`) the stages run on that range of the sorted shard list into
#   `interim/03_ranges/<START>-<STOP>/<stage>/`, and the ground truth is checked on the range's keys. `gpic-lab pack`
#   takes every range's stage directory: a key dropped in any of them is excluded.
# - **Package:** `gpic_lab.filters.quality`, `gpic_lab.filters.safety`, `gpic_lab.filters.vlm_judge`, `gpic_lab.engine.stages`,
#   `gpic_lab.filters.report`, `gpic_lab.collect.report` (confusion, drop figures, grid).

# %% tags=["parameters"]
shards: str = "sample/raw,sample/train,sample/val,sample/test"  # shard dirs/files/globs, comma-separated, data-root relative
shard_range: str = ""  # "START:STOP" of the sorted shard list of `shards` (one fan-out range); "": every shard
ground_truth: str = "sample/ground_truth.csv"  # planted-record table, relative to the data root
min_longest_side: int = 256  # quality: GPIC's rule, drop when max(width, height) is below this
max_aspect: float = 5.0  # quality: drop when longest / shortest side exceeds this
safety_threshold: float = 0.4  # safety-cpu: drop when a NudeNet exposed-nudity score reaches this
judge_model: str = ""  # Qwen3-VL dir or hub id for the vlm-judge stage; "" skips it (needs a GPU to be useful)
engine: str = "local"  # stage engine: local or dask
workers: int = 1  # stage worker processes
grid_per_reason: int = 3  # dropped images shown per reason

# %%

from gpic_lab import paths, plots, runs
from gpic_lab.collect import report
from gpic_lab.filters import quality, safety
from gpic_lab.filters import report as filter_report
from gpic_lab.shards import sources

out_root = paths.interim_dir("quality").parent
out_root = out_root / "03_ranges" / sources.range_tag(shard_range) if shard_range else out_root
shard_dirs = report.stage_paths([paths.resolve_data(p) for p in sources.split_list(shards)])
shard_dirs = sources.select(sources.expand(shard_dirs), shard_range) if shard_range else shard_dirs
thresholds = quality.QualityThresholds(min_longest_side=min_longest_side, max_aspect=max_aspect)
filter_params = {"quality": {"min_longest_side": min_longest_side, "max_aspect": max_aspect},
                 "safety-cpu": {"threshold": safety_threshold}} | (
                    {"vlm-judge": {"model": judge_model}} if judge_model else {})
print(f"{len(shard_dirs)} shard dirs -> {out_root}/{{{','.join(filter_params)}}}")
print("safety-cpu is a STAND-IN:", safety.STAND_IN)

# %% [markdown]
# ## 1 · Run the filter stages
# One row per stage. Each stage writes its own `decisions.parquet` (one row per sample, a reason for every drop,
# `unreadable:<code>` for members that cannot be read), so a rerun resumes from the per-shard markers.

# %%
summaries = filter_report.run_filters(shard_dirs, out_root, filter_params, engine=engine, workers=workers,
                                      force=True)
filter_report.stage_summary(summaries)

# %% [markdown]
# ## 2 · One row per key
# Dropped when any stage dropped it; `reason` and `stage` come from the first dropping stage (quality, then
# safety-cpu, then vlm-judge). Each stage's own verdict is in `<stage>_reason`.

# %%
decisions = filter_report.combine(out_root, list(filter_params))
decisions[~decisions["keep"]][["key", "shard", "stage", "reason", "license_family", "source"]]

# %% [markdown]
# ## 3 · Confusion table against the ground truth
# Rows: what was planted (`clean` = no quality plant; the raw shards also hold license, caption and near-duplicate
# plants, which count as `clean` here); columns: the combined decision. Every planted row should sit in its own
# column. The heuristic `blur` rule also drops a few synthetic smooth colour fields planted for other reasons (they
# have no edge at all); those appear as `clean` → `blur`. The `safety-cpu` stand-in flags two synthetic
# concentric-ring images as `unsafe-nudity` (NudeNet scores 0.56 and 0.61 for BUTTOCKS_EXPOSED at the conservative
# threshold 0.4): false positives of the stand-in, shown in the grid below.

# %%
truth = report.load_truth(paths.resolve_data(ground_truth), kind="quality")
truth = truth[truth.index.isin(decisions["key"])] if shard_range else truth  # a range holds only its plants
report.confusion(decisions, truth)

# %%
filter_report.planted_outcomes(decisions, truth)

# %% [markdown]
# ## 4 · Quality scores against their thresholds
# Each dot is a sample (green kept, red dropped by `quality`). Dashed lines are the thresholds of
# `QualityThresholds`; edge sharpness is only measured for blur candidates (Laplacian variance below its threshold).

# %%
plots.save(filter_report.plot_quality_scores(decisions, thresholds), "03_quality_safety_filter", "quality_scores")

# %% [markdown]
# ## 4b · Other thresholds, without rerunning the stages
# Run interactively (JupyterLab), this cell shows one slider per threshold of `quality` and `safety-cpu`. Moving one
# re-decides the stage's stored scores (no image is read again) and shows how many images each setting drops, per
# reason, and which images change; **Write decisions** saves the table for the current sliders
# (`interim/<stage>-rethreshold/`, with its parameters in `summary.json`) for `gpic-lab pack`. Under `gpic-lab run`
# the sliders are skipped and the parameters cell decides. From a terminal: `gpic-lab rethreshold
# data/interim/quality --out DIR -p max_aspect=3`. Rows the stored scores cannot decide (an image once dropped for
# its size has no pixel statistics) keep their decision and are counted as undecided.

# %%
from IPython.display import display

from gpic_lab.engine import rethreshold
from gpic_lab.filters.rethreshold import SLIDERS
from gpic_lab.runs import widgets

for name in ("quality", "safety-cpu"):  # the stored scores give back every decision at the stage's own thresholds
    stored, stored_stage, stored_params = rethreshold.load_stage(out_root / name)
    assert rethreshold.recompute(stored, stored_stage, {}, stored_params)[1]["changed"] == 0, name
explorers = ([widgets.threshold_explorer(out_root / name, SLIDERS[name]) for name in ("quality", "safety-cpu")]
             if runs.interactive() else [])
display(*explorers)

# %% [markdown]
# ## 5 · Drop counts by reason, license family and source

# %%
plots.save(report.plot_drops(decisions), "03_quality_safety_filter", "drops")

# %% [markdown]
# ## 6 · Dropped images per reason

# %%
plots.save(report.dropped_grid(decisions, per_reason=grid_per_reason), "03_quality_safety_filter", "dropped_grid")

# %% [markdown]
# ## Invariants

# %%
score = report.scores(decisions, truth)
clean_splits = decisions[~decisions["shard"].astype(str).str.contains("/raw/")]
assert decisions["key"].is_unique and decisions.loc[~decisions["keep"], "reason"].notna().all()
assert all(s["samples"] == len(decisions) for s in summaries.values()), "a stage lost or added samples"
assert score["planted_seen"] == score["planted"], "ground-truth keys missing from the stage's input"
assert score["right_reason"] == score["planted"], score
assert clean_splits["keep"].all(), clean_splits[~clean_splits["keep"]]
assert filter_report.nan_free(decisions, ["quality.luma_mean", "quality.laplacian_var", "safety-cpu.nudity"])

# %%
runs.record({"shard_range": shard_range, "stages": {k: {f: s[f] for f in ("samples", "kept", "dropped", "reasons")} for k, s in summaries.items()},
             "ground_truth": score, "combined_dropped": int((~decisions["keep"]).sum()),
             "safety_model": safety.STAND_IN, "vlm_judge": judge_model or "not run"}, stage="03_quality_safety_filter")
