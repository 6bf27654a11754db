"""Reference statistics: streamed from shards, GPIC npz layout, refuse to overwrite, provenance, official files."""
from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

pytest.importorskip("torch")

from gpic_lab.errors import GpicError, UsageError  # noqa: E402
from gpic_lab.evaluation import refstats  # noqa: E402
from gpic_lab.models import dinov2


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return dinov2.load_dinov2(dinov2.build_tiny_dinov2(tmp_path_factory.mktemp("m") / "dinov2-tiny"), device="cpu")


def test_build_streams_shards_into_gpic_layout(tiny_shards, tiny_model, tmp_path) -> None:
    from gpic_lab.evaluation.preprocess import reference_256
    from gpic_lab.shards.reader import iter_samples

    shards = tiny_shards(2, 4, prefix="gpic_test")
    res = refstats.build_refstats([str(p) for p in shards], tiny_model, tmp_path / "ref", split="test",
                                  model_tag="dinov2-tiny-random-x", batch_size=3)
    path = res["path"]
    assert re.search(r"gpic-test_n8_dinov2-tiny-random-x_crop-pilbicubic256-stretch224-imagenet_fp32\.npz$", path)
    with np.load(path) as data:
        assert {"dino_mu", "dino_sigma", "dino_embeddings", "key", "tar_idx"} <= set(data.files)
        emb = data["dino_embeddings"]
    st = refstats.read_stats(path)
    assert st["n"] == 8 and st["tar_idx"].tolist() == [0] * 4 + [1] * 4
    keys = [s.key for s in iter_samples([str(p) for p in shards], images=False)]
    assert st["keys"].tolist() == keys
    # running stats equal the one-pass statistics of the stored embeddings
    np.testing.assert_allclose(st["mu"], emb.astype(np.float64).mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st["sigma"], np.cov(emb.astype(np.float64), rowvar=False), rtol=1e-8, atol=1e-12)
    # and the embeddings are the protocol features: GPIC-256 then the 224 stretch
    imgs = [reference_256(s.open_image()) for s in iter_samples([str(p) for p in shards])]
    np.testing.assert_allclose(emb, dinov2.features(tiny_model, imgs), rtol=1e-5, atol=1e-5)
    side = json.loads(refstats.sidecar(path).read_text())
    assert side["n"] == 8 and side["n_shards"] == 2 and side["skipped"] == {}
    assert side["versions"]["numpy"] == np.__version__ and side["preprocess"] == refstats.PREPROCESS_TAG
    with pytest.raises(GpicError, match="refusing to overwrite"):
        refstats.build_refstats([str(p) for p in shards], tiny_model, path)
    with pytest.raises(GpicError, match="refusing to overwrite"):
        refstats.build_refstats([str(p) for p in shards], tiny_model, tmp_path / "ref", split="test",
                                model_tag="dinov2-tiny-random-x")


def test_undecodable_images_are_counted(tiny_shards, tiny_model, tmp_path) -> None:
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    good = tiny_shards(1, 3)
    junk = b"\xff\xd8\xff\xe0 definitely not a jpeg"
    key = hashlib.sha256(junk).hexdigest()
    meta = new_record(key, 10, 10, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "x",
                      "2026-01-01T00:00:00Z", "short", "junk", ["full"])
    bad = tmp_path / "gpic_test_00009.tar"
    write_shard(bad, [(key, meta, junk, "jpg")])
    res = refstats.build_refstats([str(good[0]), str(bad)], tiny_model, tmp_path / "r.npz")
    assert res["n"] == 3 and res["skipped"] == {"undecodable": 1}
    assert json.loads(refstats.sidecar(tmp_path / "r.npz").read_text())["skipped"] == {"undecodable": 1}


def test_read_official_layout_and_embeddings_only(tmp_path) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 6))
    mu, sigma = emb.mean(0), np.cov(emb, rowvar=False)
    keys = np.array([f"{i:064x}" for i in range(50)])  # a string array (object arrays are refused: never unpickled)
    np.savez(tmp_path / "test_stats.npz", dino_mu=mu.astype(np.float32), dino_sigma=sigma, key=keys,
             tar_idx=np.arange(50) // 10)
    st = refstats.read_stats(tmp_path / "test_stats.npz")
    assert st["keys"][3] == f"{3:064x}" and st["tar_idx"][-1] == 4 and st["embeddings"] is None
    assert st["mu"].dtype == np.float64 and st["sigma"].shape == (6, 6)
    np.savez(tmp_path / "emb.npz", dino_embeddings=emb)
    st2 = refstats.read_stats(tmp_path / "emb.npz")
    np.testing.assert_allclose(st2["sigma"], sigma, rtol=1e-12)
    assert st2["n"] == 50


def test_read_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(UsageError, match="missing.npz: stats file not found"):
        refstats.read_stats(tmp_path / "missing.npz")
    np.savez(tmp_path / "odd.npz", something=np.zeros(2))
    with pytest.raises(UsageError, match="odd.npz: holds neither"):
        refstats.read_stats(tmp_path / "odd.npz")
    np.savez(tmp_path / "shape.npz", dino_mu=np.zeros(3), dino_sigma=np.zeros((2, 2)))
    with pytest.raises(UsageError, match="shape.npz: dino_mu"):
        refstats.read_stats(tmp_path / "shape.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(UsageError, match=r"text.npz: not a readable npz file \(no zip header\)$"):
        refstats.read_stats(tmp_path / "text.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(UsageError, match="plain.npz: not a readable npz file"):
        refstats.read_stats(tmp_path / "plain.npz")
    with pytest.raises(UsageError, match=r"\.npz path"):
        refstats.write_stats(tmp_path / "x.bin", np.zeros(2), np.eye(2), 2)


def test_eval_prompts_in_npz_key_order(tiny_shards, tmp_path, capsys) -> None:
    from gpic_lab.commands import cli
    from gpic_lab.shards.reader import iter_samples

    shards = [str(p) for p in tiny_shards(2, 4, prefix="gpic_test")]
    metas = {s.key: s.meta for s in iter_samples(shards, images=False)}
    order = list(metas)[::-1][:5]
    np.savez(tmp_path / "test_stats.npz", dino_mu=np.zeros(2), dino_sigma=np.eye(2), key=np.array(order))
    out = tmp_path / "eval.jsonl"
    assert cli.main(["eval-prompts", *shards, "--ref", str(tmp_path / "test_stats.npz"), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == order
    assert all(r["caption"] == metas[r["key"]]["caption"] and r["caption_type"] == metas[r["key"]]["caption_type"]
               for r in rows)
    assert json.loads(capsys.readouterr().out)["found"] == 5
    np.savez(tmp_path / "more.npz", dino_mu=np.zeros(2), dino_sigma=np.eye(2), key=np.array(order + ["f" * 64]))
    assert cli.main(["eval-prompts", *shards, "--ref", str(tmp_path / "more.npz"), "-o", str(out)]) == 1
    assert "1 of 6 keys" in capsys.readouterr().err
    assert cli.main(["eval-prompts", *shards, "--ref", str(tmp_path / "more.npz"), "-o", str(out),
                     "--allow-missing"]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_partials_merge_to_the_single_pass_file(tiny_shards, tiny_model, tmp_path, capsys) -> None:
    from gpic_lab.commands import cli

    shards = [str(p) for p in tiny_shards(3, 3, prefix="gpic_test")]
    single = refstats.build_refstats(shards, tiny_model, tmp_path / "single.npz")
    parts = [refstats.build_refstats([s], tiny_model, tmp_path / "parts", model_tag="m", partial=True)["path"]
             for s in shards]
    assert all(p.split("/")[-1].startswith("partial-gpic_test_0000") for p in parts)
    merged = refstats.merge_partials(parts[::-1], tmp_path / "merged.npz")
    a, b = refstats.read_stats(single["path"]), refstats.read_stats(merged["path"])
    assert merged["n"] == 9 and sorted(a["keys"].tolist()) == sorted(b["keys"].tolist())
    np.testing.assert_allclose(b["mu"], a["mu"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b["sigma"], a["sigma"], rtol=1e-8, atol=1e-12)
    side = json.loads(refstats.sidecar(merged["path"]).read_text())
    assert side["n_shards"] == 3 and len(side["parts"]) == 3
    with pytest.raises(UsageError, match="more than one partial"):
        refstats.merge_partials([parts[0], parts[0]], tmp_path / "dup.npz")
    assert cli.main(["refstats", *parts, "--merge", "--out", str(tmp_path / "cli"), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 9
    assert cli.main(["refstats", *shards, "--out", str(tmp_path / "x")]) == 2
    assert "--model" in capsys.readouterr().err


def test_reservoir_is_uniform_and_seeded() -> None:
    counts = np.zeros(20)
    for seed in range(400):
        res = refstats.Reservoir(5, seed)
        for start in range(0, 20, 3):
            ids = list(range(start, min(start + 3, 20)))
            res.add(ids, np.zeros((len(ids), 2), np.float32))
        counts[res.ids] += 1
    assert counts.sum() == 400 * 5 and counts.min() > 60 and counts.max() < 140  # expected 100 each
    a, b = refstats.Reservoir(3, 7), refstats.Reservoir(3, 7)
    for r in (a, b):
        r.add(list(range(10)), np.arange(20, dtype=np.float32).reshape(10, 2))
    assert a.ids == b.ids and len(a.ids) == 3
    with pytest.raises(UsageError):
        refstats.Reservoir(0)


def test_max_embeddings_keeps_all_images_in_stats(tiny_shards, tiny_model, tmp_path) -> None:
    shards = [str(p) for p in tiny_shards(3, 4, prefix="gpic_test")]
    full = refstats.read_stats(refstats.build_refstats(shards, tiny_model, tmp_path / "full.npz")["path"])
    row = {k: e for k, e in zip(full["keys"].tolist(), full["embeddings"], strict=True)}
    sub = refstats.read_stats(refstats.build_refstats(shards, tiny_model, tmp_path / "sub.npz", max_embeddings=5,
                                                      seed=1)["path"])
    assert len(sub["keys"]) == 5 == len(sub["embeddings"]) == len(sub["tar_idx"]) and sub["n"] == 12
    np.testing.assert_allclose(sub["mu"], full["mu"], rtol=1e-10, atol=1e-12)
    for k, e in zip(sub["keys"].tolist(), sub["embeddings"], strict=True):
        np.testing.assert_allclose(e, row[k], rtol=1e-5, atol=1e-6)  # float32 features: batches may differ
    side = json.loads(refstats.sidecar(tmp_path / "sub.npz").read_text())
    assert side["embeddings"]["rows"] == 5 and side["embeddings"]["of"] == 12
    parts = [refstats.build_refstats([s], tiny_model, tmp_path / "p", model_tag="m", partial=True, max_embeddings=3,
                                     seed=i)["path"] for i, s in enumerate(shards)]
    merged = refstats.merge_partials(parts, tmp_path / "m.npz", max_embeddings=4, seed=2)
    st = refstats.read_stats(merged["path"])
    assert merged["rows"] == 4 and len(set(st["keys"].tolist())) == 4 and st["n"] == 12
    np.testing.assert_allclose(st["mu"], full["mu"], rtol=1e-10, atol=1e-12)
    for k, e in zip(st["keys"].tolist(), st["embeddings"], strict=True):
        np.testing.assert_allclose(e, row[k], rtol=1e-5, atol=1e-6)  # float32 features: batches may differ
    with pytest.raises(UsageError, match="max-embeddings"):
        refstats.merge_partials(parts, tmp_path / "m2.npz", max_embeddings=11, seed=2)
