"""The GPU-box recipe (scripts/gpu_box.sh) end to end on CPU: a 16-shard synthetic corpus given as a brace range,
the tiny models, two workers (`--jobs 2`): catalog, filters, embedding slices + dedup graph, caption slices, pack,
verify, reference-statistics partials + merge, eval; a rerun skips every finished step."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _corpus(out: Path, n_shards: int = 16, per_shard: int = 4) -> None:
    """Distinct synthetic photos-like images (random rectangles or triangles plus noise), 320x288 JPEGs."""
    import numpy as np
    from PIL import Image

    from gpic_lab.sample.synth import rectangles, triangles
    from gpic_lab.shards.schema import CAPTION_TYPES, new_record
    from gpic_lab.shards.writer import write_shard

    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    for s in range(n_shards):
        entries = []
        for i in range(per_shard):
            seed = 100 * s + i
            base = (rectangles if (s + i) % 2 else triangles)(320, 288, seed)
            arr = np.clip(base.astype(np.float32) + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, "JPEG", quality=92)
            data = buf.getvalue()
            key = hashlib.sha256(data).hexdigest()
            meta = new_record(key, 320, 288, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                              f"Synthetic image {seed} by Test Author via Flickr", "2026-01-01T00:00:00Z",
                              CAPTION_TYPES[i % 4], f"Coloured shapes, synthetic image number {seed}.",
                              ["nano", "lite", "full"])
            entries.append((key, meta, data, "jpg"))
        write_shard(out / f"gpic_raw_{s:05d}.tar", entries)


@pytest.mark.slow
def test_recipe_runs_end_to_end_on_16_shards_with_two_workers(tmp_path: Path) -> None:
    from gpic_lab.evaluation.evaluate import make_standins

    src = tmp_path / "src"
    _corpus(src)
    gen = tmp_path / "generated"
    make_standins([str(src / "gpic_raw_00000.tar"), str(src / "gpic_raw_00001.tar")], gen, per_image=2, seed=0)
    out = tmp_path / "work"
    env = {**os.environ, "GPIC_LAB": f"{sys.executable} -m gpic_lab.commands.cli", "PYTHONPATH": str(ROOT),
           "GPIC_LAB_STATE": str(tmp_path / "state")}
    cmd = ["bash", str(ROOT / "scripts" / "gpu_box.sh"), "--shards", f"{src}/gpic_raw_{{00000..00015}}.tar",
           "--out", str(out), "--jobs", "2", "--caption-model", "tiny", "--caption-arg", "--max-new-tokens=3",
           "--dino-model", "tiny", "--no-caption-qc", "--train-shards", "2", "--val", "6", "--test", "10",
           "--generated", str(gen)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((out / "logs").glob("*.log")))
    assert proc.returncode == 0, proc.stderr[-3000:] + logs[-6000:]

    steps = [line.split("\t")[0] for line in (out / "logs" / "times.tsv").read_text().splitlines()]
    assert steps == ["catalog", "filters", "embed", "dedup", "caption", "pack", "refstats", "eval"]
    for r in range(2):  # both workers did their share of the GPU steps
        assert json.loads((out / "logs" / f"embed.{r}.log").read_text().splitlines()[-1])["shards"] == 8

    import pandas as pd

    from gpic_lab.caption.store import load_captions
    from gpic_lab.shards.reader import iter_samples

    keys = sorted(s.key for s in iter_samples([str(src)], images=False))
    captions = load_captions(out / "captions")
    assert captions["key"].is_unique and sorted(captions["key"]) == keys  # the two slices: no gap, no duplicate
    dedup = json.loads((out / "dedup" / "summary.json").read_text())
    assert dedup["images"] == 64 and dedup["cache_misses"] == 0 and dedup["cache_hits"] == 16
    manifest = json.loads((out / "packed" / "manifest.json").read_text())
    packed = {s: v["samples"] for s, v in manifest["splits"].items()}
    assert packed["val"] == 6 and packed["test"] == 10 and packed["train"] > 0
    kept = pd.read_parquet(out / "stages" / "quality" / "decisions.parquet")["keep"].sum()
    assert sum(packed.values()) <= kept
    ref = next((out / "refstats").glob("gpic-test_n10_*.npz"))
    assert ref.is_file()
    result = json.loads((out / "eval.json").read_text())
    assert result["n_samples"] == len(list(gen.glob("*.png"))) and result["fd"] >= 0

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("skipped") == 8
