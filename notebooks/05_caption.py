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
# # 05 · Captioning at four levels and caption QC
#
# Captions every image at one of GPIC's four levels (tag 1 % / short 45 % / medium 45 % / long 9 %, assigned from a
# seeded hash of the key) with Qwen3-VL through the real transformers code, then checks captions against the rules of
# each level. On CPU the default `model="tiny"` is a tiny **random** Qwen3-VL: its captions are placeholders (flagged
# in every output row's `model_warning`) and the QC duly rejects them. The sample corpus' hand-written captions of all
# four levels are shown and QC'd next to them, and the planted bad captions (`ground_truth.csv`, kind `caption-qc`)
# must be caught with the right reason. Then the **second pass** (GPIC: "a second pass can enrich or correct
# problematic captions"): the keys QC failed are recaptioned with their level's prompt plus a correction hint and a
# larger token budget, QC runs again, and only what still fails is dropped; before/after counts per reason are shown.
# With the tiny random model the second pass corrects nothing (its captions are placeholders); with Qwen3-VL-4B it
# is the real thing. `NOT VISIBLE.` captions never pass QC and never reach a pack.
#
# - **Inputs:** shards (default: sample train/val/test), `sample/captions.json`, `sample/raw/gpic_raw_captions.tar`,
#   `sample/ground_truth.csv`.
# - **Fan-out:** `gpic-lab run notebooks/05_caption.ipynb --fan-out shard_range=0:8000:100 --gpus 0,1,2,3,4,5,6,7`
#   captions one range of the sorted shard list per GPU into the shared `captions/` directory (one file per shard)
#   and QCs each range into `ranges/<START>-<STOP>/`; a last run without `shard_range` and with `recaption=False`
#   captions nothing new and QCs every shard together (duplicates across ranges) into `decisions.parquet`.
# - **Outputs:** `interim/05_caption/captions/<shard>.captions.parquet` (+ `done/` markers),
#   `interim/05_caption/decisions.parquet` (stage `caption-qc` after the second pass, read by notebook 06; the first
#   pass in `first_pass/`, counts in `redo_counts.csv`), `captions/<shard>.redo.captions.parquet`, figures under
#   `figures/05_caption/`, metrics.
# - **Package:** `gpic_lab.caption.captioner` (`make_captioner`, `caption_shards`, `load_captions`), `gpic_lab.caption.qc`
#   (`run_qc`, `rate_table`, `worst_examples`), `gpic_lab.caption.redo` (the second pass), `gpic_lab.caption.report`.

# %% tags=["parameters"]
shards: str = "sample/train,sample/val,sample/test"  # comma-separated shard files/dirs/globs/brace ranges to caption, data-root relative
shard_range: str = ""  # "START:STOP" of the sorted shard list of `shards` (one fan-out range); "": every shard
qc_extra: str = "sample/raw/gpic_raw_captions.tar"  # extra shards QC'd but not captioned (planted bad captions; "": none)
levels_file: str = "sample/captions.json"  # hand-written captions {key: {level: caption}} ("": none)
ground_truth: str = "sample/ground_truth.csv"  # planted problems ("": no check)
model: str = "tiny"  # Qwen3-VL: "tiny" (random, CPU demo), a model dir, or a hub id in the local HF cache
backend: str = "transformers"  # transformers | vllm (GPU only)
levels: str = "auto"  # auto: one level per image from the key hash; all: four levels per image (audits)
seed: int = 0  # seed of the caption-type hash
batch_size: int = 8  # images per generate call (halved on CUDA OOM)
max_new_tokens: int = 24  # token budget per caption (0: the per-level defaults 48/80/160/512)
recaption: bool = True  # recaption shards that already have a completion marker
redo_budget: float = 2.0  # token budget factor of the second pass over the keys QC failed
gallery_n: int = 3  # images in the side-by-side gallery
worst_n: int = 8  # failing captions to list

# %%
import json

import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.caption import captioner as caption
from gpic_lab.caption import qc as caption_qc
from gpic_lab.caption import redo as caption_redo
from gpic_lab.caption import report, store
from gpic_lab.caption.levels import LEVELS
from gpic_lab.shards import sources

stage = "05_caption"
out_dir = paths.interim_dir(stage)
shard_paths = sources.select(sources.expand([str(paths.resolve_data(p)) for p in sources.split_list(shards)]),
                             shard_range)
shard_names = {p.rsplit("/", 1)[-1] for p in shard_paths}
qc_dir = out_dir / "ranges" / sources.range_tag(shard_range) if shard_range else out_dir
qc_paths = shard_paths + [str(paths.resolve_data(p)) for p in sources.split_list(qc_extra)]
honest = json.loads(paths.resolve_data(levels_file).read_text()) if levels_file else {}
budgets = {lv: max_new_tokens for lv in LEVELS} if max_new_tokens else None
f"{len(shard_paths)} shard input(s) to caption, {len(qc_paths)} to QC, {len(honest)} keys with hand-written levels"

# %% [markdown]
# ## Caption type per image
# The seeded key hash gives each shard the 1/45/45/9 % mix within sampling error (`max_dev_sigma`: the largest deviation from the expected count, in binomial standard deviations).

# %%
mix = report.type_mix(qc_paths, seed)
mix

# %% [markdown]
# ## Captioning
# Resumable per shard: a shard with a `done/` marker is skipped unless `recaption`.

# %%
captioner = caption.make_captioner(model, backend, max_new_tokens=budgets)
stats = caption.caption_shards(shard_paths, out_dir / "captions", captioner, levels=levels, batch_size=batch_size,
                               seed=seed, progress=False, force=recaption)
generated = store.load_captions(out_dir / "captions")
generated = generated[generated["shard"].isin(shard_names)].reset_index(drop=True)  # this run's shards only
print(captioner.model_warning or "real model")
pd.Series(stats).to_frame("run").T

# %%
report.captions_table(generated)

# %% [markdown]
# ## Side by side
# Hand-written captions of the four levels next to the model's caption.

# %%
fig = report.gallery_figure(shard_paths, honest, generated, n=gallery_n)
plots.save(fig, stage, "gallery")

# %% [markdown]
# ## QC: hand-written vs model captions
# Rate of every rule failure per level (a caption can fail several).

# %%
honest_rows = report.qc_levels(honest)
model_rows = report.qc_captions_frame(generated)
rates = {"hand-written": caption_qc.rate_table(honest_rows), f"model ({model})": caption_qc.rate_table(model_rows)}
report.compare_rates(rates)

# %%
fig = report.rates_figure(rates)
plots.save(fig, stage, "qc_rates")

# %% [markdown]
# ## Caption-QC stage over the shards
# Writes `decisions.parquet` (stage `caption-qc`, one row per key) for packaging; duplicates are found across all shards
# (under a `shard_range`: across the range's shards, into `ranges/<START>-<STOP>/`).

# %%
decisions, qc_rows = caption_qc.run_qc(qc_paths, str(qc_dir))
decisions["reason"].fillna("kept").value_counts().to_frame("samples")

# %% [markdown]
# ## Planted bad captions
# Each planted caption must fail with its planted reason; the control must pass.

# %%
planted = report.planted_check(qc_rows, paths.resolve_data(ground_truth)) if ground_truth else pd.DataFrame(columns=["caught"])
planted

# %% [markdown]
# ## Second pass: recaption what QC failed, QC again
# Each failed key is recaptioned at its level with the level's prompt plus a correction hint (the failed rules, their
# detail and what to do instead) and `redo_budget` × the token budget; `NOT VISIBLE.` on an image that is indeed not
# usable is not recaptioned (the image goes). QC then runs again with the same shards and parameters: `decisions.parquet`
# becomes the second pass (the first is kept in `first_pass/`), so notebook 06 drops only what still fails. Under a
# `shard_range` both passes stay in the range's QC directory.

# %%
redo_captioner = caption.make_captioner(model, backend, max_new_tokens=caption_redo.budgets(budgets, redo_budget))
second = caption_redo.redo(qc_paths, out_dir / "captions", redo_captioner, qc_dir, seed=seed, batch_size=batch_size)
print({k: v for k, v in second.items() if k not in ("before_after", "redo_files")})
second["before_after"]

# %%
store.load_captions(out_dir / "captions", redo=True)[["key", "caption_type", "redo_of", "caption"]].head(gallery_n)

# %% [markdown]
# ## Worst captions

# %%
caption_qc.worst_examples(qc_rows + model_rows, worst_n)

# %%
assert stats["captions"] == len(generated) or not recaption
assert generated["key"].is_unique or levels == "all"
assert report.types_match(generated, seed) or levels == "all"
assert (mix["max_dev_sigma"] < 4).all() or mix["n"].min() < 50
assert bool(captioner.model_warning) == (model == "tiny")
assert all(r["keep"] or r["not_visible"] for r in honest_rows)  # NOT VISIBLE.: dropped by policy, never packed
assert planted["caught"].all(), f"planted bad captions missed: {planted[~planted['caught']]}"
assert decisions["key"].is_unique
assert second["redone"] + second["not_redone"] + second["not_found"] == (~decisions["keep"]).sum()
assert second["before_after"].set_index("reason").loc["total"].tolist() == [len(decisions)] * 2

# %%
runs.record({"shard_range": shard_range, "shards": len(shard_paths), "model": model, "backend": backend, "model_warning": captioner.model_warning, "captions": len(generated),
             "caption_types": generated["caption_type"].value_counts().to_dict(), "seconds": round(stats["seconds"], 2),
             "qc_kept_handwritten": float(rates["hand-written"]["kept"].mean()) if honest else None,
             "qc_kept_model": float(rates[f"model ({model})"]["kept"].mean()),
             "qc_reasons": decisions["reason"].value_counts().to_dict(), "planted": len(planted),
             "planted_caught": int(planted["caught"].sum()),
             "redo": {k: v for k, v in second.items() if k not in ("before_after", "redo_files")},
             "redo_before_after": second["before_after"].set_index("reason").to_dict("index")}, stage)
