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
# # 06 · Packaging: splits, tiers, shards, manifest
#
# Applies every stage decision found (a key dropped by any stage is excluded, counted per stage and reason), splits
# train/val/test stratified by source × caption type, deals train into balanced shards, takes Nano/Lite/Full as the
# first 1 %/10 %/100 % of train shards, writes GPIC tars with the deterministic writer, a manifest (sha256 per shard)
# and a datasheet — then validates the output, verifies it against its manifest and packs a second time to show the
# bytes are identical.
#
# - **Inputs:** shards (default: the whole sample corpus incl. `raw/` plants), `interim/*/decisions.parquet`
#   written by notebooks 02-05 (missing ones are listed, not silently skipped), optional captions parquet.
# - **Outputs:** `interim/06_pack/packed/{train,val,test}/gpic_*_NNNNN.tar`, `manifest.json`, `datasheet.{json,md}`,
#   `figures/06_pack/shard_balance.png`, metrics.
# - **Package:** `gpic_lab.pack.packer.pack`, `gpic_lab.pack.manifest.verify`, `gpic_lab.shards.validate.validate`,
#   `gpic_lab.pack.report`.

# %% tags=["parameters"]
shards: str = "sample/train,sample/val,sample/test,sample/raw"  # comma-separated source shards/dirs, relative to the data root
decisions: str = "auto"  # "auto": every interim/*/decisions.parquet; "": none; or comma-separated stage dirs
captions: str = ""  # captions parquet dir/file whose captions replace the records' ("": keep the records' captions)
n_shards: int = 4  # train shards (Nano/Lite/Full = first 1%/10%/100%, at least one each)
n_val: float = 2  # val samples (a value in (0, 1): fraction of the kept pool)
n_test: float = 2  # test samples (same convention)
seed: int = 0  # split and shuffle seed

# %%
import json

import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.pack import manifest as mf
from gpic_lab.pack import packer as pack
from gpic_lab.pack import report
from gpic_lab.shards import validate

stage = "06_pack"
out_dir = paths.interim_dir(stage)
sources = [str(paths.resolve_data(p.strip())) for p in shards.split(",") if p.strip()]
caption_inputs = [str(paths.resolve_data(captions))] if captions else []
f"{len(sources)} source input(s); captions: {captions or 'records'}"

# %% [markdown]
# ## Stage decisions found
# Every expected GPIC stage without decisions is listed: its filter was **not** applied.

# %%
decision_files, found = report.find_decisions(decisions)
not_applied = report.missing_stages(found)
print("not applied:", ", ".join(not_applied) or "none")
found

# %% [markdown]
# ## Pack

# %%
manifest = pack.pack(sources + decision_files + caption_inputs, out_dir / "packed", n_shards, n_val, n_test, seed=seed)
sheet = json.loads((out_dir / "packed" / "datasheet.json").read_text())
report.tiers_table(manifest)

# %% [markdown]
# ## Exclusions per stage and reason

# %%
report.drops_table(sheet)

# %% [markdown]
# ## Per-shard balance (like GPIC Fig. 8)

# %%
fig = report.balance_figure(manifest)
plots.save(fig, stage, "shard_balance")

# %%
pd.DataFrame(sheet["licenses"])

# %% [markdown]
# ## Validate and verify
# `gpic-lab validate` rules on the written shards; `gpic-lab verify` against the manifest.

# %%
problems, validated = validate.validate([out_dir / "packed"], workers=1)
verify_problems, verified = mf.verify(out_dir / "packed" / "manifest.json")
report.problems_table(problems + verify_problems)

# %% [markdown]
# ## Reproducibility
# Same inputs and seed, packed again elsewhere: every shard must have the same sha256.

# %%
again = pack.pack(sources + decision_files + caption_inputs, out_dir / "packed_again", n_shards, n_val, n_test, seed=seed)
same = report.compare_manifests(manifest, again)
same

# %%
assert not problems and not verify_problems
assert validated == sum(v["samples"] for v in manifest["splits"].values())
assert same["identical"].all() and len(manifest["shards"]) == len(again["shards"])
assert manifest["tiers"]["nano"]["shards"] >= 1 and manifest["tiers"]["full"]["samples"] == manifest["splits"]["train"]["samples"]
assert sheet["kept"] + sheet["excluded"] == sheet["pool"]

# %%
runs.record({"stages_applied": sheet["stages_applied"], "stages_not_applied": not_applied, "pool": sheet["pool"],
             "kept": sheet["kept"], "excluded": sheet["excluded"], "splits": sheet["splits"], "tiers": sheet["tiers"],
             "shards": len(manifest["shards"]), "total_bytes": manifest["total_bytes"],
             "validate_problems": len(problems), "verify_problems": len(verify_problems),
             "byte_identical": bool(same["identical"].all())}, stage)
