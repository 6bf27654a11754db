"""The evaluation protocol end to end: folder/npz inputs, validation, streaming, and the CLI verbs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from gpic_lab.errors import GpicError, UsageError  # noqa: E402
from gpic_lab.evaluation import evaluate, fd, refstats  # noqa: E402
from gpic_lab.models import dinov2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny model (built once per module) and a temp root."""
    root = tmp_path_factory.mktemp("eval")
    model_dir = dinov2.build_tiny_dinov2(root / "dinov2-tiny")
    model = dinov2.load_dinov2(model_dir, device="cpu")
    return root, model_dir, model


def _shards(root: Path, n: int, per: int, prefix: str) -> list[str]:
    import hashlib

    from conftest import make_image

    from gpic_lab.shards.schema import CAPTION_TYPES, new_record
    from gpic_lab.shards.writer import write_shard

    out = []
    for s in range(n):
        samples = []
        for i in range(per):
            data = make_image(int(hashlib.md5(f"{prefix}{s}{i}".encode()).hexdigest()[:6], 16), 300 + 7 * i, 240)
            key = hashlib.sha256(data).hexdigest()
            meta = new_record(key, 300 + 7 * i, 240, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/",
                              "a", "2026-01-01T00:00:00Z", CAPTION_TYPES[i % 4], "c", ["full"])
            samples.append((key, meta, data, "jpg"))
        path = root / f"{prefix}_{s:05d}.tar"
        write_shard(path, samples)
        out.append(str(path))
    return out


def test_evaluate_folder_npz_and_embeddings_agree(setup) -> None:
    from PIL import Image

    root, _, model = setup
    ref = refstats.build_refstats(_shards(root, 2, 6, "gpic_test"), model, root / "ref.npz")["path"]
    gen = root / "gen"
    info = evaluate.make_standins(_shards(root, 1, 4, "gpic_val"), gen, per_image=3)
    assert info["written"] == 12
    files = sorted(gen.iterdir())
    assert all(evaluate.NAME_RE.match(f.name) for f in files)
    res = evaluate.evaluate(gen, ref, model=model, batch_size=5)
    assert res["n_samples"] == 12 and res["skipped"] == {} and res["fd"] > 0
    assert res["fd"] == pytest.approx(res["fd_mu"] + res["fd_sigma"])
    assert 0 <= res["precision"] <= 1 and 0 <= res["coverage"] <= 1 and "mmd" in res
    assert any("50000 recommended" in w for w in res["warnings"])
    # independent path: features of the same PNGs computed directly, FD vs the stored reference
    imgs = [Image.open(f).convert("RGB") for f in files]
    feats = dinov2.features(model, imgs)
    st = refstats.read_stats(ref)
    direct = fd.frechet_distance(*fd.stats_from_features(feats), st["mu"], st["sigma"])
    assert res["fd"] == pytest.approx(direct["fd"], rel=1e-4)
    # ADM npz of the same images, and a dino_embeddings npz, give the same FD
    np.savez(root / "adm.npz", arr_0=np.stack([np.asarray(i) for i in imgs]))
    assert evaluate.evaluate(root / "adm.npz", ref, model=model)["fd"] == pytest.approx(res["fd"], rel=1e-6)
    np.savez(root / "emb.npz", dino_embeddings=feats)
    assert evaluate.evaluate(root / "emb.npz", ref)["fd"] == pytest.approx(direct["fd"], rel=1e-6)  # float32 sums differ ~1e-8 across BLAS kernels


def test_validation_counts_problems(setup) -> None:
    from PIL import Image

    root, _, model = setup
    ref = root / "ref_v.npz"
    refstats.build_refstats(_shards(root, 1, 6, "gpic_refv"), model, ref)
    bad = root / "bad"
    bad.mkdir()
    for i in range(4):
        Image.new("RGB", (256, 256), (i * 50, 10, 10)).save(bad / f"short_k{i}.png")
    Image.new("RGB", (128, 256)).save(bad / "long_small.png")
    Image.new("L", (256, 256)).save(bad / "medium_gray.png")
    Image.new("RGB", (256, 256)).save(bad / "bogus_k9.png")
    Image.new("RGB", (256, 256)).save(bad / "nounderscore.png")
    (bad / "long_k7.png").write_bytes(b"x")
    Image.new("RGB", (256, 256)).save(bad / "medium_k3.png")  # key k3 already used by short_k3
    (bad / ".DS_Store").write_bytes(b"")
    (bad / ".ipynb_checkpoints").mkdir()
    with pytest.raises(GpicError, match="bad_name: 2, bad_size: 1, duplicate_key: 1, not_rgb: 1, undecodable: 1; "
                                        "first: bad_name: bogus_k9.png, bad_size: long_small.png") as err:
        evaluate.evaluate(bad, ref, model=model, strict=True)
    assert "not_rgb: medium_gray.png" in str(err.value) and "undecodable: long_k7.png" in str(err.value)
    res = evaluate.evaluate(bad, ref, model=model)  # any name, size and mode: GPIC-256, counted
    assert res["n_samples"] == 8 and res["strict"] is False
    assert res["skipped"] == {"duplicate_key": 1, "undecodable": 1, "ignored_dir": 1, "ignored_hidden": 1}
    assert res["preprocessed"] == {"resized_to_256": 1, "converted_to_rgb": 1}
    with pytest.raises(UsageError, match="--model"):
        evaluate.evaluate(bad, ref)
    with pytest.raises(UsageError, match="--batch-size must be >= 1"):
        evaluate.evaluate(bad, ref, model=model, strict=False, batch_size=0)
    few = root / "few"
    few.mkdir()
    Image.new("RGB", (256, 256)).save(few / "short_k1.png")
    Image.new("RGB", (256, 256)).save(few / "bogus_k2.png")
    Image.new("RGB", (256, 256), (9, 9, 9)).save(few / "long_k3.png", format="JPEG")
    with pytest.raises(GpicError, match="not_png: 1; first: bad_name: bogus_k2.png, not_png: long_k3.png"):
        evaluate.evaluate(few, ref, model=model, strict=True)
    (few / "bogus_k2.png").unlink()
    (few / "long_k3.png").unlink()
    with pytest.raises(GpicError, match=r"1 valid sample\(s\), FD needs at least 2 \(skipped: undecodable: 1\)"):
        (few / "medium_k4.jpg").write_bytes(b"not a jpeg")
        evaluate.evaluate(few, ref, model=model)
    (root / "junk.npz").write_bytes(b"junk")
    np.save(root / "arr.npy", np.zeros((3, 256, 256, 3), np.uint8))
    (root / "arr.npy").rename(root / "arr.npz")
    for name, why in (("junk.npz", "no zip header"), ("arr.npz", "a single .npy array")):
        with pytest.raises(UsageError, match=f"{name}: not a readable npz file \\({why}"):
            evaluate.evaluate(root / name, ref, model=model)
    np.savez(root / "wrongdim.npz", dino_mu=np.zeros(5), dino_sigma=np.eye(5))
    with pytest.raises(UsageError, match="different backbone"):
        evaluate.evaluate(bad, root / "wrongdim.npz", model=model, strict=False)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", *args], capture_output=True, text=True, env=env,
                          check=False)


def test_cli_refstats_eval_fd(setup, capsys) -> None:
    from gpic_lab.commands import cli

    root, model_dir, _ = setup
    env = {**os.environ, "GPIC_LAB_STATE": str(root / "state")}
    shards = _shards(root, 1, 6, "gpic_cli")
    assert cli.main(["refstats", *shards, "--model", str(model_dir), "--out", str(root / "cli_ref"),
                     "--split", "test"]) == 0
    ref = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["path"]
    assert Path(ref).name.startswith("gpic-test_n6_dinov2-")
    assert cli.main(["refstats", *shards, "--model", str(model_dir), "--out", ref]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    gen = root / "cli_gen"
    evaluate.make_standins(shards, gen, per_image=2)
    res_path = root / "results.json"
    out = _cli("eval", str(gen), "--ref", ref, "--model", str(model_dir), "-o", str(res_path), env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(res_path.read_text())
    assert res["n_samples"] == 12 and "warning: only 12 samples" in out.stderr and res["fd"] > 0
    (gen / "extra.jpg").write_bytes((gen / sorted(os.listdir(gen))[0]).read_bytes())
    strict = _cli("eval", str(gen), "--ref", ref, "--model", str(model_dir), "--strict", env=env)
    assert strict.returncode == 1 and "bad_name: 1" in strict.stderr and "Traceback" not in strict.stderr
    # gpic-lab fd between the reference and an embeddings file reproduces the library value
    st = refstats.read_stats(ref)
    np.savez(root / "half.npz", dino_embeddings=st["embeddings"][:4])
    out = _cli("fd", ref, str(root / "half.npz"), env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    expect = fd.frechet_distance(st["mu"], st["sigma"], *fd.stats_from_features(st["embeddings"][:4]))
    # rank-deficient covariances (4 float32-derived vectors): summation order (BLAS kernel, threads) moves sqrtm
    assert got["fd"] == pytest.approx(expect["fd"], rel=1e-6)
    assert cli.main(["eval", str(gen), "--ref", str(root / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "nope.npz" in err and "Traceback" not in err


def test_keyed_samples_missing_keys_and_bf16(setup) -> None:
    from PIL import Image

    root, model_dir, model = setup
    shards = _shards(root, 1, 8, "gpic_keyed")
    ref = refstats.build_refstats(shards, model, root / "keyed.npz")["path"]
    keys = refstats.read_stats(ref)["keys"].tolist()
    gen = root / "keyed"
    gen.mkdir()
    for i, key in enumerate(keys[:6]):
        Image.new("RGB", (256, 256), (30 * i, 200 - 20 * i, 90)).save(gen / f"long_{key}.png")
    res = evaluate.evaluate(gen, ref, model=model)
    assert "2 of the reference's 8 keys have no sample" in res["warnings"]
    assert not any("not in the reference key list" in w for w in res["warnings"])
    half = evaluate.evaluate(gen, ref, model_path=str(model_dir), device="cpu", dtype="bf16")
    assert half["dtype"] == "bf16" and half["fd"] == pytest.approx(res["fd"], rel=0.1, abs=0.05)
    for precision in ("fp16-autocast", "tf32"):
        other = evaluate.evaluate(gen, ref, model_path=str(model_dir), device="cpu", dtype=precision)
        assert other["dtype"] == precision and other["fd"] == pytest.approx(res["fd"], rel=0.1, abs=0.05)
    with pytest.raises(UsageError, match="dtype"):
        evaluate.evaluate(gen, ref, model_path=str(model_dir), dtype="int8")


def test_precision_context_sets_and_restores() -> None:
    import torch

    from gpic_lab.models.dinov2 import precision_context, weights_dtype

    assert weights_dtype("bf16") == torch.bfloat16 and weights_dtype("fp16-autocast") == torch.float32
    before = torch.backends.cuda.matmul.allow_tf32
    with precision_context("tf32", "cpu"):
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before
    lin = torch.nn.Linear(4, 4)
    with precision_context("bf16-autocast", "cpu"):
        assert lin(torch.ones(1, 4)).dtype == torch.bfloat16
    assert lin(torch.ones(1, 4)).dtype == torch.float32


def test_any_size_and_jpeg_get_the_protocol_crop_and_resize(setup) -> None:
    """Non-strict: a 512x384 JPEG is center-cropped and bicubic-resized to 256 (GPIC-256) before DINOv2, so its
    features equal those of the same GPIC-256 image saved as a 256x256 PNG; the resize is counted."""
    import io

    from PIL import Image

    from gpic_lab.evaluation.preprocess import reference_256

    root, _, model = setup
    ref = refstats.build_refstats(_shards(root, 1, 6, "gpic_any"), model, root / "any.npz")["path"]
    big, small = root / "any_big", root / "any_small"
    big.mkdir()
    small.mkdir()
    for i in range(4):
        rng = np.random.default_rng(i)
        img = Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8))
        img.save(big / f"sample{i}.jpg", quality=90)
        decoded = Image.open(io.BytesIO((big / f"sample{i}.jpg").read_bytes()))
        reference_256(decoded).save(small / f"short_k{i}.png")
    res = evaluate.evaluate(big, ref, model=model)
    assert res["preprocessed"] == {"resized_to_256": 4, "jpeg": 4} and res["n_samples"] == 4
    assert any("center-cropped and bicubic-resized to 256" in w for w in res["warnings"])
    strict = evaluate.evaluate(small, ref, model=model, strict=True)
    assert res["fd"] == pytest.approx(strict["fd"], rel=1e-6) and strict["preprocessed"] == {}
    with pytest.raises(GpicError, match="bad_name: 4"):
        evaluate.evaluate(big, ref, model=model, strict=True)


def test_published_tables_sit_beside_ours() -> None:
    import pandas as pd

    from gpic_lab.evaluation import published

    t3 = published.table3()
    assert t3["fd"].tolist() == [204.01, 87.80, 76.25] and t3.loc[2, "coverage"] == 0.908
    assert published.table2().set_index("set").loc["Test-50K", "fd"] == 7.44
    ours = pd.DataFrame([{"set": "x", "n_samples": 12, "fd": 3.5, "fd_mu": 1.0, "precision": None}])
    both = published.beside(ours, t3, "ours")
    assert both["source"].tolist() == ["ours"] + [t3["source"][0]] * 3
    assert both.loc[0, "fd"] == 3.5 and pd.isna(both.loc[0, "precision"]) and "fd_mu" not in both.columns
