"""The Hugging Face dataset card `OUT/README.md` of a pack, and the release facts of its manifest and datasheet.

The card's YAML declares the splits (``configs``: train / validation / test → ``train/*.tar``, ``val/*.tar``,
``test/*.tar``) and the features (``json`` as a struct of GPIC's record fields, ``jpg`` and ``png`` as images,
``__key__`` / ``__url__`` as strings), so ``datasets.load_dataset(OUT)`` loads every split in one call, as users
load GPIC from the Hub. Without declared features the webdataset builder infers them from the first examples and
fails on GPIC shards: shards mix ``.jpg`` and ``.png``, and val/test records' ``split: []`` is typed as null.

Release facts: the dataset licence (GPIC's collection is released under MIT; every image keeps its own licence in
its record) and the pack's totals (samples and shards per split, pixels, mean height × width, bytes) next to the
published ones (paper §1 and Fig. 2, dataset card).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpic_lab.shards.schema import FIELDS

DATASET_LICENSE = "MIT"  # GPIC's release licence (dataset card; paper Fig. 2)
PUBLISHED: dict[str, Any] = {  # GPIC as released (paper §1, §2.5, Fig. 2; dataset card)
    "samples": {"train": 100_000_000, "val": 200_000, "test": 1_000_000},
    "shards": {"train": 8000, "val": 32, "test": 128},
    "pixels": 27.97e12, "mean_height": 479, "mean_width": 587, "bytes": 12.9e12, "license": DATASET_LICENSE,
}
HF_SPLITS = {"train": "train", "validation": "val", "test": "test"}
_DTYPES = {str: "string", int: "int64"}


def totals(plan: Any, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Samples/shards per split, pixels, mean height and width, bytes of a written pack (sums of the shards'
    ``entries``: `writing.shard_counts`)."""
    n = sum(int(e["samples"]) for e in entries)
    return {"samples": {s: sum(len(c) for c in plan.shards[s]) for s in ("train", "val", "test")},
            "shards": {s: sum(e["split"] == s for e in entries) for s in ("train", "val", "test")},
            "pixels": sum(int(e["pixels"]) for e in entries),
            "mean_height": round(sum(int(e["height_sum"]) for e in entries) / n, 1) if n else None,
            "mean_width": round(sum(int(e["width_sum"]) for e in entries) / n, 1) if n else None,
            "bytes": sum(int(e["bytes"]) for e in entries)}


def release_facts(plan: Any, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``license``, ``totals`` and ``published`` (with each total's share of the published one) for the manifest and
    the datasheet."""
    ours = totals(plan, entries)
    ratio: dict[str, Any] = {}
    for name in ("pixels", "bytes", "mean_height", "mean_width"):
        ratio[name] = None if ours[name] is None else round(ours[name] / PUBLISHED[name], 9)
    ratio["samples"] = {s: round(ours["samples"][s] / PUBLISHED["samples"][s], 9) for s in ours["samples"]}
    return {"license": DATASET_LICENSE, "totals": ours, "published": PUBLISHED, "share_of_published": ratio}


def release_markdown(facts: dict[str, Any]) -> list[str]:
    """Datasheet lines: licence and totals against GPIC's published ones."""
    t, p = facts["totals"], facts["published"]
    lines = ["", "## Licence and totals against GPIC as published", "",
             f"- dataset licence: {facts['license']} (GPIC's release licence; each image keeps its own licence "
             "in its record)", "", "| quantity | this pack | GPIC published |", "|---|---|---|"]
    for s in ("train", "val", "test"):
        lines.append(f"| {s} samples (shards) | {t['samples'][s]:,} ({t['shards'][s]}) | "
                     f"{p['samples'][s]:,} ({p['shards'][s]}) |")
    lines.append(f"| pixels | {t['pixels']:,} | {p['pixels']:.4g} (27.97 T) |")
    mean = f"{t['mean_height']} × {t['mean_width']}" if t["mean_height"] is not None else "-"
    lines.append(f"| mean height × width | {mean} | {p['mean_height']} × {p['mean_width']} |")
    lines.append(f"| bytes (shards) | {t['bytes']:,} | {p['bytes']:.3g} (12.9 TB) |")
    return lines


def features_yaml() -> list[str]:
    """The ``dataset_info.features`` block: webdataset columns with GPIC's record as a struct."""
    lines = ["  features:", "  - name: __key__", "    dtype: string", "  - name: __url__", "    dtype: string",
             "  - name: json", "    struct:"]
    for name, typ in FIELDS.items():
        lines.append(f"    - name: {name}")
        lines.append("      list: string" if typ is list else f"      dtype: {_DTYPES[typ]}")
    lines += ["  - name: jpg", "    dtype: image", "  - name: png", "    dtype: image"]
    return lines


def card_markdown(manifest: dict[str, Any], name: str = "gpic-lab pack") -> str:
    """OUT/README.md: YAML front matter (licence, configs, features) and a short description."""
    splits = [s for s, d in HF_SPLITS.items() if manifest["splits"][d]["shards"]]
    yaml = ["---", f"license: {DATASET_LICENSE.lower()}", f"pretty_name: {name}", "task_categories:",
            "- text-to-image", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        yaml += [f"  - split: {split}", f"    path: {HF_SPLITS[split]}/*.tar"]
    yaml += ["dataset_info:", *features_yaml(), "---"]
    tiers = ", ".join(f"{t}: first {v['shards']} train shard(s), {v['samples']:,} samples"
                      for t, v in manifest["tiers"].items())
    counts = ", ".join(f"{s} {manifest['splits'][HF_SPLITS[s]]['samples']:,}" for s in splits)
    body = ["", f"# {name}", "",
            "Shards in GPIC's layout (WebDataset tars, `{key}.json` then `{key}.jpg` or `{key}.png`), written by "
            "`gpic-lab pack`.", "",
            "```python", "import datasets", "ds = datasets.load_dataset(\"PATH/TO/THIS/DIRECTORY\")  "
            "# train, validation, test", "```", "",
            f"Splits: {counts}. "
            f"Tiers (the record's `split` list): {tiers}.", "",
            "Licence: the collection is released under MIT, as GPIC is; every image keeps its own licence, licence "
            "URL and attribution in its JSON record. Counts per stage and reason, licences and totals against "
            "GPIC's published ones: `datasheet.md`; file hashes: `manifest.json`.", ""]
    return "\n".join(yaml + body)


def write_card(out: str | Path, manifest: dict[str, Any]) -> Path:
    """Write OUT/README.md atomically; returns its path."""
    from gpic_lab.fsio import write_bytes_atomic

    path = Path(out) / "README.md"
    write_bytes_atomic(path, card_markdown(manifest).encode())
    return path
