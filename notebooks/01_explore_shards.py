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
# # 01 · Explore GPIC shards
#
# Catalog a set of GPIC shards (metadata only, no image decode) and look at what is inside: licenses by family and
# source, the caption-type mix against GPIC's 1/45/45/9 target, caption lengths against the paper's medians, image
# sizes and aspect ratios, per-shard counts, and a grid of samples with their captions and attribution.
#
# - **Inputs:** `shards`, a shard file or directory relative to the data root (default: the bundled sample corpus;
#   point it at a directory of real GPIC shards, e.g. `gpic/train`, to explore those).
# - **Outputs:** `figures/01_explore_shards/*.png`, `data/interim/explore/catalog.parquet`, metrics.
# - **Package:** `gpic_lab.shards.explore`, `gpic_lab.shards.catalog`.

# %% tags=["parameters"]
shards: str = "sample/train"  # shard file or directory, relative to the data root
grid_images: int = 6  # samples shown in the image grid
seed: int = 0  # seed for picking the grid samples
workers: int = 2  # processes for the catalog scan

# %%
from gpic_lab import fsio, paths, plots, runs
from gpic_lab.shards import explore

out_dir = paths.interim_dir("explore")
catalog, problems = explore.load_catalog([paths.resolve_data(shards)], workers=workers)
fsio.write_parquet_atomic(out_dir / "catalog.parquet", catalog)
print(f"{len(catalog)} samples in {catalog['shard'].nunique()} shards; {len(problems)} problems")
catalog.head(3).T

# %% [markdown]
# ## Licenses by family and source
# GPIC keeps only CC BY (any version), CC0, public domain and 'no known copyright restrictions'.

# %%
explore.license_table(catalog)

# %%
plots.save(explore.plot_licenses(catalog), "01_explore_shards", "licenses")

# %% [markdown]
# ## Caption-type mix
# Every GPIC split and shard targets 1% tag, 45% short, 45% medium, 9% long; `z` is the deviation in binomial standard errors.

# %%
mix = explore.caption_mix(catalog)
mix.round(3)

# %%
plots.save(explore.plot_caption_mix(catalog), "01_explore_shards", "caption_mix")

# %% [markdown]
# ## Caption length by type
# Words per caption against the medians measured on 53,637 released images (tag 7, short 17, medium 39, long 131).

# %%
lengths = explore.caption_lengths(catalog)
lengths.round(2)

# %%
plots.save(explore.plot_caption_lengths(catalog), "01_explore_shards", "caption_lengths")

# %% [markdown]
# ## Image sizes and aspect ratios

# %%
explore.size_table(catalog).round(2)

# %%
plots.save(explore.plot_sizes(catalog), "01_explore_shards", "sizes_aspect")

# %% [markdown]
# ## Per-shard counts

# %%
explore.shard_counts(catalog)

# %%
plots.save(explore.plot_shard_counts(catalog), "01_explore_shards", "per_shard")

# %% [markdown]
# ## Samples with their captions and attribution

# %%
plots.save(explore.image_grid(catalog, n=grid_images, seed=seed), "01_explore_shards", "sample_grid")

# %% [markdown]
# ## Invariants

# %%
assert len(catalog) > 0, "no samples found"
assert not problems, f"{len(problems)} shard problems: run `gpic-lab validate` on {shards}"
assert catalog["key"].is_unique
assert int(mix["count"].sum()) == len(catalog)
assert (catalog[["img_width", "img_height"]] > 0).all().all()

# %%
runs.record({"samples": len(catalog), "shards": int(catalog["shard"].nunique()),
             "caption_mix": mix["share"].round(4).to_dict(),
             "median_words": lengths["median"].to_dict(),
             "license_families": catalog["license_family"].value_counts().to_dict()}, stage="01_explore_shards")
