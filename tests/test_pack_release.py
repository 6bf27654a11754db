"""GPIC's layout preset and dry run, the dataset card that `datasets.load_dataset(OUT)` reads, and the release
facts (dataset licence, totals against the published ones) in the manifest and the datasheet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.pack import preset
from gpic_lab.pack.packer import pack

CLI = [sys.executable, "-m", "gpic_lab.commands.cli", "pack"]


def test_gpic_preset_is_the_released_layout() -> None:
    lay = preset.plan_layout("gpic")
    assert {s: (v["shards"], v["files"]) for s, v in lay["splits"].items()} == {
        "train": (8000, "train/gpic_train_{00000..07999}.tar"), "val": (32, "val/gpic_val_{00000..00031}.tar"),
        "test": (128, "test/gpic_test_{00000..00127}.tar")}
    assert (lay["splits"]["val"]["samples"], lay["splits"]["test"]["samples"]) == (200_000, 1_000_000)
    assert lay["splits"]["train"]["samples_per_shard"] == 12_500
    assert {t: v["shards"] for t, v in lay["tiers"].items()} == {"nano": 80, "lite": 800, "full": 8000}
    assert lay["tiers"]["lite"]["files"] == "train/gpic_train_{00000..00799}.tar"
    over = preset.resolve("gpic", shards=16, test_shards=None)
    assert over["shards"] == 16 and over["test_shards"] == 128  # flag by flag
    with pytest.raises(UsageError, match="--shards N is required"):
        preset.resolve(None)
    with pytest.raises(UsageError, match="unknown preset"):
        preset.resolve("laion")


def test_cli_dry_run_writes_nothing(sample_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "--preset", "gpic", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train/gpic_train_{00000..07999}.tar" in proc.stdout and "nano" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1])["tiers"]["nano"]["shards"] == 80
    out = tmp_path / "never"
    proc = subprocess.run([*CLI, str(sample_dir / "train"), str(sample_dir / "val"), "--preset", "gpic",
                           "--shards", "2", "--val", "2", "--test", "1", "--val-shards", "1", "--test-shards", "1",
                           "--dry-run", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout.strip().splitlines()[-1])
    assert plan["plan"]["splits"] == {"train": 8, "val": 2, "test": 1} and not out.exists()
    bad = subprocess.run([*CLI, str(sample_dir / "train"), "--preset", "gpic", "--dry-run"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "exceeds" in bad.stderr and "Traceback" not in bad.stderr
    bare = subprocess.run([*CLI, "--shards", "2"], capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "--out DIR are required" in bare.stderr


@pytest.fixture(scope="module")
def packed(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("release") / "out"
    manifest = pack([sample_dir / "train", sample_dir / "val", sample_dir / "test",
                     sample_dir / "raw" / "gpic_raw_dups.tar"], out, 3, 2, 2)
    return out, manifest


def test_load_dataset_returns_every_split_with_every_sample(packed: tuple[Path, dict], tmp_path: Path) -> None:
    import datasets

    from gpic_lab.shards.reader import iter_samples, list_shards

    out, manifest = packed
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(ds) == {"train", "validation", "test"}
    for hf_split, split in (("train", "train"), ("validation", "val"), ("test", "test")):
        keys = {s.key for s in iter_samples(list_shards([out / split]), images=False)}
        assert ds[hf_split].num_rows == manifest["splits"][split]["samples"] == len(keys)
        assert {r["key"] for r in ds[hf_split]["json"]} == keys
        for row in ds[hf_split]:
            image = row["jpg"] if row["jpg"] is not None else row["png"]
            assert image is not None and image.size == (row["json"]["img_width"], row["json"]["img_height"])
    assert {type(r["png"]).__name__ for r in ds["train"] if r["png"] is not None}  # jpg and png shards mix
    assert ds["validation"][0]["json"]["split"] == []


def test_card_manifest_and_datasheet_carry_licence_and_totals(packed: tuple[Path, dict]) -> None:
    from gpic_lab.shards.reader import iter_samples, list_shards

    out, manifest = packed
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n") and "path: val/*.tar" in card and "dtype: image" in card
    assert manifest["license"] == "MIT"
    samples = list(iter_samples(list_shards([out]), images=False))
    t = manifest["totals"]
    assert t["pixels"] == sum(s.meta["img_width"] * s.meta["img_height"] for s in samples)
    assert t["samples"] == {s: manifest["splits"][s]["samples"] for s in ("train", "val", "test")}
    assert t["bytes"] == manifest["total_bytes"] and t["shards"] == {"train": 3, "val": 1, "test": 1}
    assert manifest["published"]["pixels"] == 27.97e12 and manifest["published"]["shards"]["train"] == 8000
    assert manifest["share_of_published"]["samples"]["val"] == pytest.approx(2 / 200_000)
    sheet = (out / "datasheet.md").read_text()
    assert "dataset licence: MIT" in sheet and "| mean height × width |" in sheet and "479 × 587" in sheet
    assert json.loads((out / "datasheet.json").read_text())["release"]["totals"] == t


def test_datasheet_counts_are_those_of_the_written_records(packed: tuple[Path, dict]) -> None:
    """The datasheet sums what each shard counted as it was written: the same as counting the records read back."""
    from collections import Counter

    from gpic_lab.core.licenses import license_family, source_of
    from gpic_lab.shards.reader import iter_samples, list_shards

    out, manifest = packed
    sheet = json.loads((out / "datasheet.json").read_text())
    licenses: Counter = Counter()
    mix: dict[str, Counter] = {}
    sources: dict[str, Counter] = {}
    heights, widths = [], []
    for split in ("train", "val", "test"):
        for s in iter_samples(list_shards([out / split]), images=False):
            m = s.meta
            licenses[(split, license_family(m["license"], m["license_url"]), m["license"])] += 1
            mix.setdefault(split, Counter())[m["caption_type"]] += 1
            sources.setdefault(split, Counter())[source_of(m)] += 1
            heights.append(m["img_height"])
            widths.append(m["img_width"])
    assert len({lic for _, _, lic in licenses}) > 1  # more than one licence to count
    assert {(r["split"], r["family"], r["license"]): r["count"] for r in sheet["licenses"]} == dict(licenses)
    assert sheet["caption_types"] == {s: dict(c) for s, c in mix.items()}
    assert sheet["sources"] == {s: dict(c) for s, c in sources.items()}
    totals = manifest["totals"]
    assert totals["mean_height"] == round(sum(heights) / len(heights), 1)
    assert totals["mean_width"] == round(sum(widths) / len(widths), 1)
    assert "licenses" not in manifest["shards"][0] and "pixels" not in manifest["shards"][0]
