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
# The catalog is written to Parquet shard by shard and every table below is an aggregate computed by a polars lazy
# scan of that file, so memory stays flat in the number of rows: the same cells explore a 100 M-row catalog
# (`gpic-lab bench catalog-explore` measures it on a synthetic 10 M-row one).
#
# - **Inputs:** `shards`, a shard file or directory relative to the data root (default: the bundled sample corpus;
#   point it at a directory of real GPIC shards, e.g. `gpic/train`, to explore those), or `catalog`, an existing
#   catalog Parquet (`gpic-lab catalog`) to explore without scanning shards.
# - **Outputs:** `figures/01_explore_shards/*.png`, `data/interim/explore/catalog.parquet`, metrics.
# - **Package:** `gpic_lab.shards.catalog`, `gpic_lab.shards.explore_lazy`, `gpic_lab.shards.explore_figures`,
#   `gpic_lab.shards.buckets`, `gpic_lab.shards.explore` (image grid).

# %% tags=["parameters"]
shards: str = "sample/train"  # shard file or directory, relative to the data root
catalog: str = ""  # an existing catalog .parquet (relative to the data root) to explore instead; "": scan `shards`
grid_images: int = 6  # samples shown in the image grid
seed: int = 0  # seed for picking the grid samples
workers: int = 2  # processes for the catalog scan

# %%
from gpic_lab import paths, plots, runs
from gpic_lab.shards import buckets, explore, explore_lazy
from gpic_lab.shards import catalog as shard_catalog
from gpic_lab.shards import explore_figures as figures

stage = "01_explore_shards"
out_dir = paths.interim_dir("explore")
catalog_path = paths.resolve_data(catalog) if catalog else out_dir / "catalog.parquet"
scanned = ({"problems": [], "shards": None} if catalog else
           shard_catalog.write_catalog([paths.resolve_data(shards)], catalog_path, on_error="quarantine", workers=workers))
problems = scanned["problems"]
lf = explore_lazy.scan(catalog_path)
info = explore_lazy.overview(lf)
print(f"{info['samples']} samples in {info['shards']} shards; {len(problems)} problems; catalog {catalog_path}")
explore_lazy.collect(lf.head(3)).T

# %% [markdown]
# ## Licenses by family and source
# GPIC keeps only CC BY (any version), CC0, public domain and 'no known copyright restrictions'.

# %%
licenses = explore_lazy.license_table(lf)
licenses

# %%
plots.save(figures.plot_licenses(licenses), stage, "licenses")

# %% [markdown]
# ## Caption-type mix
# Every GPIC split and shard targets 1% tag, 45% short, 45% medium, 9% long; `z` is the deviation in binomial standard errors.

# %%
mix = explore_lazy.caption_mix(lf)
mix.round(3)

# %%
plots.save(figures.plot_caption_mix(mix), stage, "caption_mix")

# %% [markdown]
# ## Caption length by type
# Words per caption against the medians measured on 53,637 released images (tag 7, short 17, medium 39, long 131).

# %%
words = explore_lazy.word_counts(lf)
lengths = explore_lazy.caption_lengths(lf, words)
lengths.round(2)

# %%
plots.save(figures.plot_caption_lengths(words), stage, "caption_lengths")

# %% [markdown]
# ## Image sizes and aspect ratios
# Exact quantiles (two streaming passes per column: a histogram, then the values of one bin).

# %%
sizes = explore_lazy.size_table(lf)
sizes.round(2)

# %%
plots.save(figures.plot_sizes(explore_lazy.size_counts(lf)), stage, "sizes_aspect")

# %% [markdown]
# ## Per-shard counts

# %%
per_shard = explore_lazy.shard_counts(lf)
per_shard

# %%
plots.save(figures.plot_shard_counts(per_shard), stage, "per_shard")

# %% [markdown]
# ## Samples with their captions and attribution
# Rows picked at random by row number, then read from their shards by offset.

# %%
plots.save(explore.image_grid(explore_lazy.sample_rows(catalog_path, grid_images, seed), n=grid_images, seed=seed),
           stage, "sample_grid")

# %% [markdown]
# ## Invariants
# Key uniqueness is counted per key-hash bucket (`gpic_lab.shards.buckets`), so it too runs in bounded memory.

# %%
keys = buckets.repeated_keys(catalog_path)
assert info["samples"] > 0, "no samples found"
assert not problems, f"{len(problems)} shard problems: run `gpic-lab validate` on {shards}"
assert keys["repeated"] == 0 and keys["rows"] == info["samples"], keys
assert int(mix["count"].sum()) == info["samples"]
assert (sizes.loc[["img_width", "img_height"], "min"] > 0).all()

# %%
runs.record({"samples": info["samples"], "shards": info["shards"], "caption_mix": mix["share"].round(4).to_dict(),
             "median_words": lengths["median"].to_dict(),
             "license_families": licenses["total"].drop("total").to_dict()}, stage=stage)
