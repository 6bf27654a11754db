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
# # 23 · Bias audit
#
# What the captions say about people, and who is in the images. Caption side: documented, versioned word lists
# (`gpic_lab/wordlists/`: gender, age, skin tone/ethnicity descriptors, religion, disability; occupations,
# activities, settings) give per-caption category mentions, their frequencies with Wilson 95% intervals,
# co-occurrence of gender/age terms with occupations, activities and settings, and breakdowns by source, license
# and caption type. Image side: frontal-face counts from OpenCV's Haar cascade (shipped in opencv-python-headless)
# (faces kept only when the eye cascade finds an eye in them) and how face presence relates to captions mentioning
# a person.
#
# Word-list hits are how a caption *refers* to people, never a fact about anyone's identity; the Haar cascade
# misses profiles and fires on some textures. On the 15-image sample the intervals are wide on purpose: read them.
#
# - **Inputs:** shards (default: the clean sample splits), `sample/captions.json` (all caption levels per key).
# - **Outputs:** `interim/23_audit_bias/{bias_captions,bias_frequencies,faces}.parquet`, figures
#   `figures/23_audit_bias/{term_frequencies,faces}.png`, metrics (incl. word-list versions).
# - **Package:** `gpic_lab.audits.bias` (`caption_table`, `frequency_table`, `frequencies`, `cooccurrence`,
#   `detect_faces`, `face_vs_mentions`, `wilson`, `bootstrap_ci`), `gpic_lab.audits.hallucination.items_from_shards`.

# %% tags=["parameters"]
shards: str = "sample/train,sample/val,sample/test"  # comma-separated shard files/dirs, relative to the data root
levels_file: str = "sample/captions.json"  # JSON {key: {level: caption}}: audit every level ("": shard captions only)
identity_lists: str = "gender,age,ethnicity,religion,disability"  # word lists counted and broken down
context_lists: str = "occupations,activities,settings"  # word lists crossed with gender and age terms
breakdowns: str = "source,license_family,caption_type"  # columns to break the gender frequencies down by
face_min_neighbors: int = 8  # Haar cascade minNeighbors (higher: fewer false faces, more misses)
face_verify_eyes: bool = True  # keep a face only when the eye cascade finds an eye in it
n_boot: int = 1000  # bootstrap resamples for the faces-per-image interval

# %%
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

# %% [markdown]
# ## Mentions per caption

# %%
items = items_from_shards(shard_paths, levels=levels)
table = bias.caption_table(bias.rows_from_items(items), lists=[*identity, *context])
write_parquet_atomic(out_dir / "bias_captions.parquet", table)
table.loc[table["person"], ["key", "caption_type", *identity, *[f"{c}_terms" for c in context]]].assign(
    key=table["key"].str[:12])

# %% [markdown]
# ## Frequencies (share of captions, Wilson 95% intervals)

# %%
freq = bias.frequency_table(table, identity)
write_parquet_atomic(out_dir / "bias_frequencies.parquet", freq)
fig = bias.frequency_figure(freq, f"Identity terms in {len(table)} captions of {table['key'].nunique()} images")
plots.save(fig, stage, "term_frequencies")
freq[freq["captions"] > 0].round(3)

# %% [markdown]
# ## Breakdowns of gender terms

# %%
pd.concat({by: bias.frequencies(table, "gender", by=by).rename(columns={by: "value"}) for by in groups
           if by in table.columns}).round(3)

# %% [markdown]
# ## Co-occurrence with occupations, activities and settings

# %%
pd.concat({f"{a} × {b}": bias.cooccurrence(table, a, b).stack() for a in ("gender", "age") if a in identity
           for b in context if len(bias.cooccurrence(table, a, b))}).rename("captions").to_frame()

# %% [markdown]
# ## Faces in the images vs captions mentioning a person

# %%
images = {it.key: it.image for it in items}
boxes = bias.detect_faces(images, min_neighbors=face_min_neighbors, verify_eyes=face_verify_eyes)
faces = {k: len(v) for k, v in boxes.items()}
write_parquet_atomic(out_dir / "faces.parquet", pd.DataFrame({"key": list(faces), "faces": list(faces.values())}))
fig = bias.faces_figure(images, boxes)
plots.save(fig, stage, "faces")
relation, per_image = bias.face_vs_mentions(table, faces)
face_ci = bias.bootstrap_ci(list(faces.values()), n_boot=n_boot)
relation.round(3)

# %%
per_image.assign(key=per_image["key"].str[:12]).sort_values("faces", ascending=False).head(10)

# %%
assert len(table) == len(items) and set(faces) == set(table["key"])
assert (freq["ci_low"] <= freq["share"]).all() and (freq["share"] <= freq["ci_high"]).all()
assert relation["images"].sum() == table["key"].nunique()
assert face_ci[0] <= sum(faces.values()) / len(faces) <= face_ci[1]

# %%
runs.record({"captions": len(table), "images": int(table["key"].nunique()), "wordlists": bias.versions(),
             "person_captions": int(table["person"].sum()),
             "frequencies": {f"{r.list}:{r.category}": [r.captions, r.of] for r in freq.itertuples() if r.captions},
             "images_with_faces": int(sum(v > 0 for v in faces.values())),
             "faces_per_image": {"mean": sum(faces.values()) / max(len(faces), 1), "ci95": list(face_ci)}}, stage)
