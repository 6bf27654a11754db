"""Build notebooks 05 (captioning + caption QC) and 06 (packaging) with nbformat, without outputs.

Run: .venv/bin/python notebooks/build_05_06.py
"""

from __future__ import annotations

from pathlib import Path

from nbcells import code, md, write


def nb05() -> Path:
    return write("05_caption.ipynb", [
        md("""
# 05 · Captioning at four levels and caption QC

Captions every image at one of GPIC's four levels (tag 1 % / short 45 % / medium 45 % / long 9 %, assigned from a
seeded hash of the key) with Qwen3-VL through the real transformers code, then checks captions against the rules of
each level. On CPU the default `model="tiny"` is a tiny **random** Qwen3-VL: its captions are placeholders (flagged
in every output row's `model_warning`) and the QC duly rejects them. The sample corpus' hand-written captions of all
four levels are shown and QC'd next to them, and the planted bad captions (`ground_truth.csv`, kind `caption-qc`)
must be caught with the right reason.

- **Inputs:** shards (default: sample train/val/test), `sample/captions.json`, `sample/raw/gpic_raw_captions.tar`,
  `sample/ground_truth.csv`.
- **Outputs:** `interim/05_caption/captions/<shard>.captions.parquet` (+ `done/` markers),
  `interim/05_caption/decisions.parquet` (stage `caption-qc`, read by notebook 06), figures under
  `figures/05_caption/`, metrics.
- **Package:** `gpic_lab.caption` (`make_captioner`, `caption_shards`, `load_captions`), `gpic_lab.caption_qc`
  (`run_qc`, `rate_table`, `worst_examples`), `gpic_lab.caption_report`.
"""),
        code("""
shards: str = "sample/train,sample/val,sample/test"  # comma-separated shard files/dirs to caption, relative to the data root
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
gallery_n: int = 3  # images in the side-by-side gallery
worst_n: int = 8  # failing captions to list
""", params=True),
        code("""
import json

import pandas as pd

from gpic_lab import caption, caption_qc, paths, plots, runs
from gpic_lab import caption_report as report

stage = "05_caption"
out_dir = paths.interim_dir(stage)
shard_paths = [str(paths.resolve_data(p.strip())) for p in shards.split(",") if p.strip()]
qc_paths = shard_paths + [str(paths.resolve_data(p.strip())) for p in qc_extra.split(",") if p.strip()]
honest = json.loads(paths.resolve_data(levels_file).read_text()) if levels_file else {}
budgets = {lv: max_new_tokens for lv in caption.LEVELS} if max_new_tokens else None
f"{len(shard_paths)} shard input(s) to caption, {len(qc_paths)} to QC, {len(honest)} keys with hand-written levels"
"""),
        md("## Caption type per image\nThe seeded key hash gives each shard the 1/45/45/9 % mix within sampling error "
           "(`max_dev_sigma`: the largest deviation from the expected count, in binomial standard deviations)."),
        code("""
mix = report.type_mix(qc_paths, seed)
mix
"""),
        md("## Captioning\nResumable per shard: a shard with a `done/` marker is skipped unless `recaption`."),
        code("""
captioner = caption.make_captioner(model, backend, max_new_tokens=budgets)
stats = caption.caption_shards(shard_paths, out_dir / "captions", captioner, levels=levels, batch_size=batch_size,
                               seed=seed, progress=False, force=recaption)
generated = caption.load_captions(out_dir / "captions")
print(captioner.model_warning or "real model")
pd.Series(stats).to_frame("run").T
"""),
        code("""
report.captions_table(generated)
"""),
        md("## Side by side\nHand-written captions of the four levels next to the model's caption."),
        code("""
fig = report.gallery_figure(shard_paths, honest, generated, n=gallery_n)
plots.save(fig, stage, "gallery")
"""),
        md("## QC: hand-written vs model captions\nRate of every rule failure per level (a caption can fail several)."),
        code("""
honest_rows = report.qc_levels(honest)
model_rows = report.qc_captions_frame(generated)
rates = {"hand-written": caption_qc.rate_table(honest_rows), f"model ({model})": caption_qc.rate_table(model_rows)}
report.compare_rates(rates)
"""),
        code("""
fig = report.rates_figure(rates)
plots.save(fig, stage, "qc_rates")
"""),
        md("## Caption-QC stage over the shards\nWrites `decisions.parquet` (stage `caption-qc`, one row per key) for "
           "packaging; duplicates are found across all shards."),
        code("""
decisions, qc_rows = caption_qc.run_qc(qc_paths, str(out_dir))
decisions["reason"].fillna("kept").value_counts().to_frame("samples")
"""),
        md("## Planted bad captions\nEach planted caption must fail with its planted reason; the control must pass."),
        code("""
planted = report.planted_check(qc_rows, paths.resolve_data(ground_truth)) if ground_truth else pd.DataFrame(columns=["caught"])
planted
"""),
        md("## Worst captions"),
        code("""
caption_qc.worst_examples(qc_rows + model_rows, worst_n)
"""),
        code("""
assert stats["captions"] == len(generated) or not recaption
assert generated["key"].is_unique or levels == "all"
assert report.types_match(generated, seed) or levels == "all"
assert (mix["max_dev_sigma"] < 4).all() or mix["n"].min() < 50
assert bool(captioner.model_warning) == (model == "tiny")
assert rates["hand-written"]["kept"].eq(1.0).all() if honest else True
assert planted["caught"].all(), f"planted bad captions missed: {planted[~planted['caught']]}"
assert decisions["key"].is_unique
"""),
        code("""
runs.record({"model": model, "backend": backend, "model_warning": captioner.model_warning, "captions": len(generated),
             "caption_types": generated["caption_type"].value_counts().to_dict(), "seconds": round(stats["seconds"], 2),
             "qc_kept_handwritten": float(rates["hand-written"]["kept"].mean()) if honest else None,
             "qc_kept_model": float(rates[f"model ({model})"]["kept"].mean()),
             "qc_reasons": decisions["reason"].value_counts().to_dict(), "planted": len(planted),
             "planted_caught": int(planted["caught"].sum())}, stage)
"""),
    ])


def nb06() -> Path:
    return write("06_pack.ipynb", [
        md("""
# 06 · Packaging: splits, tiers, shards, manifest

Applies every stage decision found (a key dropped by any stage is excluded, counted per stage and reason), splits
train/val/test stratified by source × caption type, deals train into balanced shards, takes Nano/Lite/Full as the
first 1 %/10 %/100 % of train shards, writes GPIC tars with the deterministic writer, a manifest (sha256 per shard)
and a datasheet — then validates the output, verifies it against its manifest and packs a second time to show the
bytes are identical.

- **Inputs:** shards (default: the whole sample corpus incl. `raw/` plants), `interim/*/decisions.parquet`
  written by notebooks 02-05 (missing ones are listed, not silently skipped), optional captions parquet.
- **Outputs:** `interim/06_pack/packed/{train,val,test}/gpic_*_NNNNN.tar`, `manifest.json`, `datasheet.{json,md}`,
  `figures/06_pack/shard_balance.png`, metrics.
- **Package:** `gpic_lab.pack.pack`, `gpic_lab.manifest.verify`, `gpic_lab.validate.validate`,
  `gpic_lab.pack_report`.
"""),
        code("""
shards: str = "sample/train,sample/val,sample/test,sample/raw"  # comma-separated source shards/dirs, relative to the data root
decisions: str = "auto"  # "auto": every interim/*/decisions.parquet; "": none; or comma-separated stage dirs
captions: str = ""  # captions parquet dir/file whose captions replace the records' ("": keep the records' captions)
n_shards: int = 4  # train shards (Nano/Lite/Full = first 1%/10%/100%, at least one each)
n_val: float = 2  # val samples (a value in (0, 1): fraction of the kept pool)
n_test: float = 2  # test samples (same convention)
seed: int = 0  # split and shuffle seed
""", params=True),
        code("""
import json

import pandas as pd

from gpic_lab import manifest as mf
from gpic_lab import pack, paths, plots, runs, validate
from gpic_lab import pack_report as report

stage = "06_pack"
out_dir = paths.interim_dir(stage)
sources = [str(paths.resolve_data(p.strip())) for p in shards.split(",") if p.strip()]
caption_inputs = [str(paths.resolve_data(captions))] if captions else []
f"{len(sources)} source input(s); captions: {captions or 'records'}"
"""),
        md("## Stage decisions found\nEvery expected GPIC stage without decisions is listed: its filter was **not** applied."),
        code("""
decision_files, found = report.find_decisions(decisions)
not_applied = report.missing_stages(found)
print("not applied:", ", ".join(not_applied) or "none")
found
"""),
        md("## Pack"),
        code("""
manifest = pack.pack(sources + decision_files + caption_inputs, out_dir / "packed", n_shards, n_val, n_test, seed=seed)
sheet = json.loads((out_dir / "packed" / "datasheet.json").read_text())
report.tiers_table(manifest)
"""),
        md("## Exclusions per stage and reason"),
        code("""
report.drops_table(sheet)
"""),
        md("## Per-shard balance (like GPIC Fig. 8)"),
        code("""
fig = report.balance_figure(manifest)
plots.save(fig, stage, "shard_balance")
"""),
        code("""
pd.DataFrame(sheet["licenses"])
"""),
        md("## Validate and verify\n`gpic-lab validate` rules on the written shards; `gpic-lab verify` against the manifest."),
        code("""
problems, validated = validate.validate([out_dir / "packed"], workers=1)
verify_problems, verified = mf.verify(out_dir / "packed" / "manifest.json")
report.problems_table(problems + verify_problems)
"""),
        md("## Reproducibility\nSame inputs and seed, packed again elsewhere: every shard must have the same sha256."),
        code("""
again = pack.pack(sources + decision_files + caption_inputs, out_dir / "packed_again", n_shards, n_val, n_test, seed=seed)
same = report.compare_manifests(manifest, again)
same
"""),
        code("""
assert not problems and not verify_problems
assert validated == sum(v["samples"] for v in manifest["splits"].values())
assert same["identical"].all() and len(manifest["shards"]) == len(again["shards"])
assert manifest["tiers"]["nano"]["shards"] >= 1 and manifest["tiers"]["full"]["samples"] == manifest["splits"]["train"]["samples"]
assert sheet["kept"] + sheet["excluded"] == sheet["pool"]
"""),
        code("""
runs.record({"stages_applied": sheet["stages_applied"], "stages_not_applied": not_applied, "pool": sheet["pool"],
             "kept": sheet["kept"], "excluded": sheet["excluded"], "splits": sheet["splits"], "tiers": sheet["tiers"],
             "shards": len(manifest["shards"]), "total_bytes": manifest["total_bytes"],
             "validate_problems": len(problems), "verify_problems": len(verify_problems),
             "byte_identical": bool(same["identical"].all())}, stage)
"""),
    ])


if __name__ == "__main__":
    for path in (nb05(), nb06()):
        print(path)
