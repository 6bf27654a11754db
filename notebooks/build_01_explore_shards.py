"""Build notebook 01 (explore GPIC shards) without outputs.

Run: .venv/bin/python notebooks/build_01_explore_shards.py
"""

from __future__ import annotations

from nbcells import code, md, write

CELLS = [
    md("""
# 01 · Explore GPIC shards

Catalog a set of GPIC shards (metadata only, no image decode) and look at what is inside: licenses by family and
source, the caption-type mix against GPIC's 1/45/45/9 target, caption lengths against the paper's medians, image
sizes and aspect ratios, per-shard counts, and a grid of samples with their captions and attribution.

- **Inputs:** `shards`, a shard file or directory relative to the data root (default: the bundled sample corpus;
  point it at a directory of real GPIC shards, e.g. `gpic/train`, to explore those).
- **Outputs:** `figures/01_explore_shards/*.png`, `data/interim/explore/catalog.parquet`, metrics.
- **Package:** `gpic_lab.explore`, `gpic_lab.catalog`.
"""),
    code("""
shards: str = "sample/train"  # shard file or directory, relative to the data root
grid_images: int = 6  # samples shown in the image grid
seed: int = 0  # seed for picking the grid samples
workers: int = 2  # processes for the catalog scan
""", params=True),
    code("""
from gpic_lab import explore, fsio, paths, plots, runs

out_dir = paths.interim_dir("explore")
catalog, problems = explore.load_catalog([paths.resolve_data(shards)], workers=workers)
fsio.write_parquet_atomic(out_dir / "catalog.parquet", catalog)
print(f"{len(catalog)} samples in {catalog['shard'].nunique()} shards; {len(problems)} problems")
catalog.head(3).T
"""),
    md("""
## Licenses by family and source
GPIC keeps only CC BY (any version), CC0, public domain and 'no known copyright restrictions'.
"""),
    code("""
explore.license_table(catalog)
"""),
    code("""
plots.save(explore.plot_licenses(catalog), "01_explore_shards", "licenses")
"""),
    md("""
## Caption-type mix
Every GPIC split and shard targets 1% tag, 45% short, 45% medium, 9% long; `z` is the deviation in binomial standard errors.
"""),
    code("""
mix = explore.caption_mix(catalog)
mix.round(3)
"""),
    code("""
plots.save(explore.plot_caption_mix(catalog), "01_explore_shards", "caption_mix")
"""),
    md("""
## Caption length by type
Words per caption against the medians measured on 53,637 released images (tag 7, short 17, medium 39, long 131).
"""),
    code("""
lengths = explore.caption_lengths(catalog)
lengths.round(2)
"""),
    code("""
plots.save(explore.plot_caption_lengths(catalog), "01_explore_shards", "caption_lengths")
"""),
    md("""
## Image sizes and aspect ratios
"""),
    code("""
explore.size_table(catalog).round(2)
"""),
    code("""
plots.save(explore.plot_sizes(catalog), "01_explore_shards", "sizes_aspect")
"""),
    md("""
## Per-shard counts
"""),
    code("""
explore.shard_counts(catalog)
"""),
    code("""
plots.save(explore.plot_shard_counts(catalog), "01_explore_shards", "per_shard")
"""),
    md("""
## Samples with their captions and attribution
"""),
    code("""
plots.save(explore.image_grid(catalog, n=grid_images, seed=seed), "01_explore_shards", "sample_grid")
"""),
    md("""
## Invariants
"""),
    code("""
assert len(catalog) > 0, "no samples found"
assert not problems, f"{len(problems)} shard problems: run `gpic-lab validate` on {shards}"
assert catalog["key"].is_unique
assert int(mix["count"].sum()) == len(catalog)
assert (catalog[["img_width", "img_height"]] > 0).all().all()
"""),
    code("""
runs.record({"samples": len(catalog), "shards": int(catalog["shard"].nunique()),
             "caption_mix": mix["share"].round(4).to_dict(),
             "median_words": lengths["median"].to_dict(),
             "license_families": catalog["license_family"].value_counts().to_dict()}, stage="01_explore_shards")
"""),
]


if __name__ == "__main__":
    print(write("01_explore_shards.ipynb", CELLS))
