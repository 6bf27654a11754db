"""`--shard-range A:B` / `--rank R --world-size W` on caption, stage, refstats and dedup's embedding step: the
workers' outputs merge into what one run over every shard gives, without duplicates or gaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpic_lab.commands import cli


@pytest.fixture
def shards(tiny_shards) -> list[str]:
    return [str(p) for p in tiny_shards(n_shards=3, per_shard=3)]


@pytest.fixture
def dino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gpic_lab.models.dinov2 import build_tiny_dinov2

    return build_tiny_dinov2(tmp_path_factory.mktemp("dino") / "dinov2-tiny-random")


def _keys(paths: list[str]) -> list[str]:
    from gpic_lab.shards.reader import iter_samples

    return sorted(s.key for s in iter_samples(paths, images=False))


@pytest.mark.slow
def test_caption_ranks_merge_to_the_full_run(shards, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpic_lab.caption import store

    monkeypatch.setenv("GPIC_LAB_STATE", str(tmp_path / "state"))
    common = ["--model", "tiny", "--max-new-tokens", "2", "--progress", "off"]
    for rank in range(2):
        assert cli.main(["caption", f"{Path(shards[0]).parent}/gpic_train_*.tar", "--out", str(tmp_path / "parts"),
                         "--rank", str(rank), "--world-size", "2", *common]) == 0
    assert cli.main(["caption", *shards, "--out", str(tmp_path / "whole"), *common]) == 0
    parts, whole = store.load_captions(tmp_path / "parts"), store.load_captions(tmp_path / "whole")
    assert parts["key"].is_unique and sorted(parts["key"]) == _keys(shards)
    cols = ["key", "caption_type", "caption"]
    pd.testing.assert_frame_equal(parts[cols].sort_values("key").reset_index(drop=True),
                                  whole[cols].sort_values("key").reset_index(drop=True))


def test_stage_ranges_merge_every_finished_shard(shards, tmp_path: Path) -> None:
    out, whole = tmp_path / "ranged", tmp_path / "whole"
    assert cli.main(["stage", "schema", *shards, "--out", str(out), "--shard-range", "2:3", "--progress", "off"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["shards"] == 1 and first["shards_in_list"] == 3
    assert cli.main(["stage", "schema", *shards, "--out", str(out), "--shard-range", "0:2", "--progress", "off"]) == 0
    assert cli.main(["stage", "schema", *shards, "--out", str(whole), "--progress", "off"]) == 0
    ranged, full = pd.read_parquet(out / "decisions.parquet"), pd.read_parquet(whole / "decisions.parquet")
    assert ranged["key"].is_unique and sorted(ranged["key"]) == _keys(shards)
    cols = ["key", "shard", "keep", "reason"]
    pd.testing.assert_frame_equal(ranged[cols].sort_values("key").reset_index(drop=True),
                                  full[cols].sort_values("key").reset_index(drop=True))


def test_refstats_rank_partials_merge_to_the_single_pass(shards, dino, tmp_path: Path, capsys) -> None:
    from gpic_lab.evaluation.refstats import read_stats

    for rank in range(3):
        assert cli.main(["refstats", *shards, "--model", str(dino), "--out", str(tmp_path / "parts"),
                         "--rank", str(rank), "--world-size", "3", "--batch-size", "4", "--progress", "off"]) == 0
    assert len(list((tmp_path / "parts").glob("partial-*.npz"))) == 3
    assert cli.main(["refstats", str(tmp_path / "parts"), "--merge", "--out", str(tmp_path / "merged")]) == 0
    assert cli.main(["refstats", *shards, "--model", str(dino), "--out", str(tmp_path / "single"),
                     "--batch-size", "4", "--progress", "off"]) == 0
    merged = read_stats(next((tmp_path / "merged").glob("*.npz")))
    single = read_stats(next((tmp_path / "single").glob("*.npz")))
    assert merged["n"] == single["n"] == 9
    assert sorted(merged["keys"]) == sorted(single["keys"]) == _keys(shards)
    np.testing.assert_allclose(merged["mu"], single["mu"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(merged["sigma"], single["sigma"], rtol=1e-7, atol=1e-10)
    capsys.readouterr()
    assert cli.main(["refstats", str(tmp_path / "parts"), str(tmp_path / "parts"), "--merge",
                     "--out", str(tmp_path / "twice")]) == 2  # the same partials twice: duplicated keys


def test_reference_from_ranges_reuses_every_partial(shards, dino, tmp_path: Path) -> None:
    from gpic_lab.evaluation.refparts import reference
    from gpic_lab.models.dinov2 import load_dinov2

    model = load_dinov2(dino, device="cpu")
    parts = [reference(shards, model, tmp_path, "ref", "tiny", shard_range=r, batch_size=4) for r in ("0:2", "2:3")]
    assert [p["n"] for p in parts] == [6, 3] and all(p["computed"] == 1 for p in parts)
    whole = reference(shards, model, tmp_path, "ref", "tiny", batch_size=4)
    assert whole["computed"] == 0 and whole["n"] == 9 and len(whole["partials"]) == 2
    again = reference(shards, model, tmp_path, "ref", "tiny", batch_size=4)
    assert again["path"] == whole["path"] and again.get("reused")


def test_dedup_embedding_slices_fill_the_cache_of_the_full_run(shards, tmp_path: Path, capsys) -> None:
    cache = str(tmp_path / "cache")
    for rng in ("0:1", "1:3"):
        assert cli.main(["dedup", *shards, "--encoder", "dhash", "--cache", cache, "--shard-range", rng]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [x["shards"] for x in lines] == [1, 2] and sum(x["images"] for x in lines) == 9
    assert cli.main(["dedup", *shards, "-o", str(tmp_path / "a" / "decisions.parquet"), "--encoder", "dhash",
                     "--cache", cache]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["cache_misses"] == 0 and summary["cache_hits"] == 3 and summary["images"] == 9
    assert cli.main(["dedup", *shards, "-o", str(tmp_path / "b" / "decisions.parquet"), "--encoder", "dhash",
                     "--cache", str(tmp_path / "fresh")]) == 0
    a, b = (pd.read_parquet(tmp_path / d / "decisions.parquet") for d in ("a", "b"))
    pd.testing.assert_frame_equal(a.drop(columns=["shard"]), b.drop(columns=["shard"]))
    assert cli.main(["dedup", *shards, "--encoder", "dhash"]) == 2  # the graph needs -o
