"""GPIC's two-tier rule: unit cases on hand-made graphs, then the planted sample corpus end to end (CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpic_lab.dedup import rule as dedup
from gpic_lab.errors import UsageError

SSCD = dedup.DEFAULTS["sscd"]


def _run(n: int, pairs: list[tuple[int, int, float]], pixels: list[int], rule: dedup.Rule = SSCD,
         sha: list[str] | None = None, permissive: list[bool] | None = None) -> dedup.Result:
    keys = np.array([f"k{i:02d}" for i in range(n)])
    rank = dedup.rank_order(np.array(pixels), keys, None if permissive is None else np.array(permissive))
    pi, pj, ps = (np.array([p[k] for p in pairs]) for k in range(3)) if pairs else (np.zeros(0),) * 3
    return dedup.apply_rule(n, pi, pj, ps, rank, rule, None if sha is None else np.array(sha))


def test_pair_above_near_dup_drops_lower_resolution() -> None:
    res = _run(3, [(0, 1, 0.97), (1, 2, 0.95)], [100, 200, 300])
    assert res.keep.tolist() == [False, True, True]
    assert (res.reason[0], res.kept[0], res.similarity[0]) == ("near-dup>0.9625", 1, pytest.approx(0.97))
    # 0.95 is a link (component of 3 < 5) but below 0.9625: both kept


def test_chain_points_to_the_survivor() -> None:
    res = _run(3, [(0, 1, 0.99), (1, 2, 0.98)], [100, 200, 300])
    assert res.keep.tolist() == [False, False, True]
    assert res.kept.tolist() == [2, 2, -1]
    assert res.similarity[0] == pytest.approx(0.99)  # no direct pair to 2: the link it was dropped by


def test_cluster_of_five_keeps_only_the_highest_resolution() -> None:
    pairs = [(0, 1, 0.91), (1, 2, 0.92), (2, 3, 0.93), (3, 4, 0.91), (5, 6, 0.91)]
    res = _run(7, pairs, [10, 50, 20, 30, 40, 5, 6])
    assert res.keep.tolist() == [False, True, False, False, False, True, True]
    assert set(res.reason[[0, 2, 3, 4]]) == {"cluster>=5"} and set(res.kept[[0, 2, 3, 4]]) == {1}
    assert res.similarity[2] == pytest.approx(0.92)  # direct link to the survivor
    assert res.component_size.tolist()[:5] == [5] * 5
    # the same component is left alone with cluster_min 6 (all links < 0.9625)
    assert _run(7, pairs, [10, 50, 20, 30, 40, 5, 6], dedup.Rule(0.9, 0.9625, 6)).keep.all()


def test_exact_bytes_first_then_thresholds_are_parameters() -> None:
    res = _run(3, [(0, 2, 0.93)], [100, 100, 50], sha=["a", "a", "b"])
    assert res.keep.tolist() == [True, False, True] and res.reason[1] == "exact-dup" and res.kept[1] == 0
    low = _run(3, [(0, 2, 0.93)], [100, 100, 50], dedup.Rule(0.9, 0.92), sha=["a", "a", "b"])
    assert low.keep.tolist() == [True, False, False] and low.reason[2] == "near-dup>0.92"
    assert low.counts() == {"kept": 1, "exact-dup": 1, "near-dup>0.92": 1}


def test_license_aware_tie_rule_prefers_permissive() -> None:
    plain = _run(2, [(0, 1, 0.99)], [100, 200], permissive=None)
    aware = _run(2, [(0, 1, 0.99)], [100, 200], dedup.Rule(license_aware=True), permissive=[True, False])
    assert plain.keep.tolist() == [False, True] and aware.keep.tolist() == [True, False]
    mask = dedup.permissive_mask([{"license": "CC BY 2.0"}, {"license": "All Rights Reserved"}, {}])
    assert mask.tolist() == [True, False, False]


def test_rule_validation_and_defaults() -> None:
    with pytest.raises(UsageError, match="link"):
        dedup.Rule(0.95, 0.9)
    with pytest.raises(UsageError, match="cluster_min"):
        dedup.Rule(cluster_min=1)
    with pytest.raises(UsageError, match="no defaults"):
        dedup.default_rule("clip")
    assert dedup.default_rule("sscd") == dedup.Rule(0.90, 0.9625, 5)
    assert dedup.default_rule("efficientnet", near_dup=0.85).near_dup == 0.85


@pytest.fixture(scope="module")
def truth(sample_dir: Path) -> pd.DataFrame:
    gt = pd.read_csv(sample_dir / "ground_truth.csv")
    return gt.assign(original=gt["detail"].str.removeprefix("of:"))


@pytest.fixture(scope="module")
def sample_run(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("dedup") / "decisions.parquet"
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "dedup", str(sample_dir / "train"),
           str(sample_dir / "raw" / "gpic_raw_dups.tar"), "-o", str(out), "--against", str(sample_dir / "test"),
           str(sample_dir / "val"), "--cache", str(out.parent / "cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return out, proc


def test_cli_removes_every_planted_copy_and_nothing_else(sample_run, truth: pd.DataFrame, sample_dir: Path) -> None:
    """No encoder flag: SSCD from the wheel with GPIC's thresholds. Every planted copy above 0.9625 to its original
    goes, in favour of that original (the highest resolution); no image that is not a planted copy goes."""
    from gpic_lab.dedup import report as dedup_report

    out, proc = sample_run
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(out)
    assert {"key", "shard", "stage", "keep", "reason", "kept_key", "similarity", "license_family",
            "source", "encoder"} <= set(frame.columns)
    assert frame["key"].is_unique and len(frame) == 18 and (frame["encoder"] == "sscd").all()
    planted = truth[truth["kind"] == "near-dup"].set_index("key")
    dropped = frame[~frame["keep"]].set_index("key")
    assert set(dropped.index) <= set(planted.index)  # precision 1: no distinct image dropped
    for key, row in dropped.iterrows():
        assert row["kept_key"] == planted.loc[key, "original"], (planted.loc[key, "label"], row.to_dict())
        assert row["reason"] in ("cluster>=5", "near-dup>0.9625") and row["similarity"] > 0.90
    calib = dedup_report.calibration(_sample_embeddings(sample_dir, out.parent / "cache"), sample_dir / "ground_truth.csv")
    score = dedup_report.score_against_truth(frame, sample_dir / "ground_truth.csv", calib, 0.9625)
    assert score["above_near_dup"] >= 5 and score["above_near_dup_dropped"] == score["above_near_dup"], score
    kept = frame[frame["keep"]]
    assert kept["reason"].isna().all() and kept["kept_key"].isna().all()
    assert pd.read_csv(out.with_name("counts.csv"))["count"].sum() == 18
    summary = json.loads(out.with_name("summary.json").read_text())
    assert summary["encoder"] == "sscd" and "sscd_disc_mixup" in summary["model"]
    assert summary["rule"] == {"link": 0.9, "near_dup": 0.9625, "cluster_min": 5, "license_aware": False}
    assert "sscd: SSCD sscd_disc_mixup" in proc.stdout


def test_default_keeps_every_distinct_image_of_the_whole_sample(sample_dir: Path, tmp_path: Path,
                                                                truth: pd.DataFrame) -> None:
    """On every split and every raw plant (look-alike synthetic scenes included) the default encoder drops only
    planted copies and the planted leak (its held-out original is in the set), each in favour of its original."""
    out = tmp_path / "decisions.parquet"
    dedup.run_dedup([str(sample_dir / d) for d in ("train", "val", "test", "raw")], out,
                    cache_dir=str(tmp_path / "cache"))
    frame = pd.read_parquet(out).set_index("key")
    copies = truth[truth["kind"].isin(["near-dup", "leakage"])].set_index("key")["original"]
    dropped = frame[~frame["keep"]]
    assert set(dropped.index) <= set(copies.index) and len(dropped) >= 6
    assert (dropped["kept_key"] == copies.loc[dropped.index]).all()


def test_leakage_report_finds_planted_overlap(sample_run, truth: pd.DataFrame) -> None:
    out, _ = sample_run
    leaks = pd.read_csv(out.with_name("leakage.csv"))
    planted = truth[truth["kind"] == "leakage"]
    assert set(zip(leaks["train_key"], leaks["heldout_key"], strict=True)) == set(
        zip(planted["key"], planted["original"], strict=True))
    keys = json.loads(out.with_name("leakage_keys.json").read_text())
    assert keys["keys"] == sorted(planted["key"]) and keys["field"] == "key"


def test_leakage_counts_identical_bytes_even_below_threshold() -> None:
    from gpic_lab.dedup.embed_cache import Embeddings

    def emb(keys: list[str], vecs: list[list[float]], sha: list[str]) -> Embeddings:
        n = len(keys)
        return Embeddings(np.array(keys), np.array(["s"] * n), np.array(vecs, np.float32), np.ones(n, int),
                          np.ones(n, int), np.array(sha), [{}] * n)

    train = emb(["a", "b"], [[1, 0], [0, 1]], ["h1", "h2"])
    test = emb(["t"], [[0.6, 0.8]], ["h2"])
    leaks = dedup.leakage(train, test, 0.9)
    assert leaks[["train_key", "heldout_key", "same_bytes"]].values.tolist() == [["b", "t", True]]


def test_cli_bad_usage_exits_2(tmp_path: Path, sample_dir: Path) -> None:
    base = [sys.executable, "-m", "gpic_lab.commands.cli", "dedup", str(sample_dir / "train")]
    for extra, msg in ((["-o", str(tmp_path / "x.csv")], "must end in .parquet"),
                       (["-o", str(tmp_path / "x.parquet"), "--encoder", "dinov2"], "needs --weights"),
                       (["-o", str(tmp_path / "x.parquet"), "--encoder", "sscd", "--dtype", "float16"], "--dtype"),
                       (["-o", str(tmp_path / "x.parquet"), "--link", "0.99", "--near-dup", "0.9"], "link"),
                       (["-o", str(tmp_path / "x.parquet"), "--against", str(sample_dir / "train" / "gpic_train_00000.tar")],
                        "both a PATH and an --against shard")):
        proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr


def test_report_tables_on_the_sample_run(sample_run, sample_dir: Path) -> None:
    from gpic_lab.dedup import report as dedup_report

    out, _ = sample_run
    frame = pd.read_parquet(out)
    score = dedup_report.score_against_truth(frame, sample_dir / "ground_truth.csv")
    assert score["planted"] == 8 and score["precision"] == 1.0 and score["distinct_dropped"] == 0
    assert score["right_survivor"] == score["true_drops"] == score["dropped"] >= 6
    wrong = frame.assign(keep=True, reason=None)
    assert dedup_report.score_against_truth(wrong, sample_dir / "ground_truth.csv")["recall"] == 0.0
    table = dedup_report.before_after(frame)
    assert table["before"].sum() == 18 and table["after"].sum() == 18 - score["dropped"]
    groups = dedup_report.cluster_sizes(frame)
    assert groups["images"].sum() == 18
    calib = dedup_report.calibration(_sample_embeddings(sample_dir, out.parent / "cache"), sample_dir / "ground_truth.csv")
    suggested = dedup_report.suggest_thresholds(calib)
    assert suggested["separable"] and suggested["max_distinct"] < 0.5  # SSCD: distinct real photos far apart


def _sample_embeddings(sample_dir: Path, cache: Path):
    from gpic_lab.dedup import embed, embed_cache

    shards = [sample_dir / "train", sample_dir / "raw" / "gpic_raw_dups.tar"]
    emb, stats = embed_cache.embed_shards(shards, embed.load_encoder(embed.DEFAULT_ENCODER), cache)
    assert stats["cache_misses"] == 0  # the CLI run already cached every shard
    return emb


def test_unreadable_image_is_a_row_and_exact_bytes_collapse(tmp_path: Path) -> None:
    from conftest import make_image

    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    def rec(key: str) -> dict:
        return new_record(key, 320, 240, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                          "Photo by Test Author via Flickr", "2026-01-01T00:00:00Z", "short", "A test image.",
                          ["nano", "lite", "full"])

    import io

    from PIL import Image

    a = make_image(1)
    buf = io.BytesIO()
    Image.open(io.BytesIO(make_image(2))).transpose(Image.Transpose.ROTATE_180).save(buf, "JPEG")
    b = buf.getvalue()  # a distinct image for dHash (every gradient sign flips)
    shard = tmp_path / "gpic_train_00000.tar"
    write_shard(shard, [("a" * 64, rec("a" * 64), a, "jpg"), ("b" * 64, rec("b" * 64), b, "jpg"),
                        ("c" * 64, rec("c" * 64), a, "jpg"), ("d" * 64, rec("d" * 64), b"not an image", "jpg")])
    out = tmp_path / "decisions.parquet"
    summary = dedup.run_dedup([str(shard)], out, "dhash", cache_dir=str(tmp_path / "cache"))
    frame = pd.read_parquet(out).set_index("key")
    assert frame.loc["c" * 64, "reason"] == "exact-dup" and frame.loc["c" * 64, "kept_key"] == "a" * 64
    assert frame.loc["d" * 64, "reason"] == "unreadable:image-decode" and not frame.loc["d" * 64, "keep"]
    assert summary["unreadable"] == 1 and summary["counts"]["unreadable:image-decode"] == 1
    assert frame.loc[["a" * 64, "b" * 64], "keep"].all() and len(frame) == 4
    again = dedup.run_dedup([str(shard)], out, "dhash", cache_dir=str(tmp_path / "cache"))
    assert again["cache_hits"] == 1 and again["unreadable"] == 1  # the skip list survives the cache


def test_same_key_in_two_shards_keeps_one_row_and_the_image(sample_dir: Path, tmp_path: Path) -> None:
    """A shard copied under another name: every key appears twice with the same bytes; the decisions keep one row
    per key, that row is kept (the image survives once), and each row names its own shard."""
    import shutil

    src = sample_dir / "train" / "gpic_train_00000.tar"
    for name in ("a_00000.tar", "b_00000.tar"):
        shutil.copy(src, tmp_path / name)
    out = tmp_path / "decisions.parquet"
    summary = dedup.run_dedup([str(tmp_path / "a_00000.tar"), str(tmp_path / "b_00000.tar")], out, "dhash",
                              cache_dir=str(tmp_path / "cache"))
    frame = pd.read_parquet(out)
    assert frame["key"].is_unique and frame["keep"].all() and frame["shard"].str.endswith("a_00000.tar").all()
    assert summary["duplicate_keys"] == len(frame) == summary["counts"]["kept"] == summary["images"] // 2
    assert pd.read_csv(out.with_name("counts.csv"))["count"].sum() == len(frame)
