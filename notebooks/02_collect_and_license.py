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
# # 02 · Collect images and filter by license
#
# Part 1 collects a few images from a **local replay server** (127.0.0.1 only: it answers like the Flickr REST API
# and the Wikimedia Commons API, serves real images from the sample corpus and injects faults such as 429 with
# Retry-After, 5xx and truncated bodies) into GPIC-format shards: key = sha256 of the bytes, decoded width/height,
# license, license_url, attribution, empty caption fields; source URLs go only to a provenance table. The same code
# collects from the real APIs with `gpic-lab collect flickr|commons` (key from `$FLICKR_API_KEY`, never here).
#
# Part 1 then replays, one small collection each, what the real APIs do to a long run: Flickr's 4,000-result cap
# (repeated pages, error 20), shifting pages, transient API errors, crops among the size variants, 429 with a long
# Retry-After and User-Agent blocks on the image host, Commons property continuation past 50 files, `thumbmime` /
# `thumberror`, maxlag and ratelimited answers, and files without an `Artist`. Each row says how the run ended and
# what it left pending for a resume.
#
# Part 2 runs the `license` stage over the sample corpus (its planted non-permissive, unknown, attribution-missing
# and URL-mismatch records) plus the collected shards, and compares the decisions with `ground_truth.csv`.
#
# - **Inputs:** `shards` (comma-separated shard dirs relative to the data root), `ground_truth`.
# - **Outputs:** `data/interim/collect/<source>/` (shards, provenance, state.json), `data/interim/collect_scenarios/`,
#   `data/interim/license/`
#   (decisions.parquet, counts.csv, reasons.csv, summary.json), `figures/02_collect_and_license/*.png`, metrics.
# - **Package:** `gpic_lab.collect` (replay, collector, report), `gpic_lab.core.licenses`, `gpic_lab.engine.stages`.

# %% tags=["parameters"]
sources: str = "flickr,commons"  # replay sources to collect from, comma-separated (flickr, commons)
max_items: int = 6  # images written per source
faults: str = "api:429,image:truncate,image:503"  # faults the replay server injects per source (target:fault)
flickr_licenses: str = "4,7,8,9,10,11,2,5"  # Flickr license ids searched (2 = NC and 5 = SA on purpose)
all_licenses: bool = True  # download non-permissive images too, so the license stage has collected work
shards: str = "sample/raw,sample/train,sample/val,sample/test"  # shard dirs for the license stage, data-root relative
ground_truth: str = "sample/ground_truth.csv"  # planted-record table, relative to the data root
engine: str = "local"  # stage engine: local or dask
workers: int = 1  # stage worker processes
grid_per_reason: int = 2  # dropped images shown per reason
scenarios: str = "all"  # API behaviours replayed in section 2 ("all", or comma-separated names; "" skips them)

# %%
import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.collect import report
from gpic_lab.collect import scenarios as api_scenarios
from gpic_lab.collect.writer import read_provenance
from gpic_lab.engine import stages

collect_dir = paths.interim_dir("collect")
stage_dir = paths.interim_dir("license")
source_list = [s.strip() for s in sources.split(",") if s.strip()]
shard_dirs = [paths.resolve_data(p.strip()) for p in shards.split(",") if p.strip()]
print(f"collect into {collect_dir}; license stage into {stage_dir}")

# %% [markdown]
# ## 1 · Collect from the replay server
# One row per source: how the collection ended, what was written, what was skipped and why (byte duplicates,
# non-image bodies, non-permissive licenses when `all_licenses` is off), and the retries the injected faults caused.

# %%
collection = report.collect_demo(collect_dir, source_list, max_items, faults, flickr_licenses,
                                 permissive_only=not all_licenses)
collection.T

# %% [markdown]
# ## 2 · A collection surviving the real APIs' behaviours
# `status` is how the final run ended (`done`), `first_run` what the first attempt left in the deferred-download
# queue (an image host answering `Retry-After: 3600`, a User-Agent block), `repeated_downloads` how often one photo
# was fetched twice (never), `windows_split` how many upload-date windows the 4,000-result cap forced.

# %%
scenario_names = None if scenarios == "all" else [n.strip() for n in scenarios.split(",") if n.strip()]
behaviours = (api_scenarios.scenario_table(paths.interim_dir("collect_scenarios"), scenario_names)
              if scenarios else pd.DataFrame(columns=["status", "written", "repeated_downloads"]))
behaviours

# %% [markdown]
# ## 3 · Commons license flags kept in the provenance table
# NonFree, Copyrighted, Restrictions and AttributionRequired as Commons publishes them; the license stage applies
# them (NonFree and Restrictions drop a file).

# %%
flag_columns = ["title", "size", "attribution_required", "copyrighted", "nonfree", "restrictions"]
read_provenance(collect_dir / "commons").reindex(columns=flag_columns)

# %% [markdown]
# ## 4 · The collected records
# GPIC fields only (no URL anywhere in a shard); `spdx` is the normalised license.

# %%
records = report.collected_records(collect_dir)
records

# %% [markdown]
# ## 5 · License stage over the corpus and the collected shards

# %%
summary = stages.run_stage("license", report.stage_paths([*shard_dirs, collect_dir]), stage_dir, engine=engine,
                           workers=workers, force=True, progress=False)
pd.read_csv(stage_dir / "reasons.csv")

# %% [markdown]
# ## 6 · Confusion table against the ground truth
# Rows: what was planted (`clean` = no license plant); columns: what the stage decided (`kept` or the drop reason).
# A perfect stage puts every count on the matching cell and `clean` entirely under `kept`.

# %%
decisions = report.tag_origin(pd.read_parquet(stage_dir / "decisions.parquet"), collect_dir)
truth = report.load_truth(paths.resolve_data(ground_truth), kind="license")
corpus = decisions[decisions["origin"] == "corpus"]
report.confusion(corpus, truth)

# %% [markdown]
# ## 7 · Licenses by family × source
# Kept and dropped samples per license family and source (`other` = the sample corpus's scikit-image/sklearn images).

# %%
report.license_matrix(decisions)

# %% [markdown]
# ## 8 · Drop counts by reason, license family and source

# %%
plots.save(report.plot_drops(decisions), "02_collect_and_license", "drops")

# %% [markdown]
# ## 9 · Dropped images per reason

# %%
plots.save(report.dropped_grid(decisions, per_reason=grid_per_reason), "02_collect_and_license", "dropped_grid")

# %% [markdown]
# ## Invariants

# %%
score = report.scores(corpus, truth)
collected = decisions[decisions["origin"] == "collected"]
assert summary["samples"] == len(decisions) and summary["kept"] + summary["dropped"] == len(decisions)
assert decisions["key"].is_unique and decisions.loc[~decisions["keep"], "reason"].notna().all()
assert score["planted_seen"] == score["planted"], "ground-truth keys missing from the stage's input"
assert score["right_reason"] == score["planted"], score
assert score["false_drops"] == 0, score
assert report.url_leaks(collect_dir) == 0, "a source URL reached a shard"
assert set(collection["hosts"]) <= {"127.0.0.1"}
assert len(collected) == len(records)
assert (behaviours["status"] == "done").all() and (behaviours["repeated_downloads"] == 0).all(), behaviours

# %%
runs.record({"collected": collection[["written", "requests", "retries"]].astype(int).to_dict(),
             "collected_kept": int(collected["keep"].sum()), "collected_dropped": int((~collected["keep"]).sum()),
             "license_stage": {k: summary[k] for k in ("samples", "kept", "dropped", "reasons")},
             "ground_truth": score,
             "api_behaviours": behaviours[["status", "written", "repeated_downloads"]].astype(str).to_dict()}, stage="02_collect_and_license")
