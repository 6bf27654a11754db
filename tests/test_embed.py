"""Encoders: real loading code (TorchScript file for sscd, the wheel-shipped EfficientNet-Lite0, numpy hashes),
L2-normalised outputs, and the per-shard cache keyed by every input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from gpic_lab.dedup import embed, embed_cache
from gpic_lab.errors import UsageError


def _img(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def sscd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scripted conv net with SSCD's interface (NCHW float in, 512-d out) saved as TorchScript."""
    import torch

    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)
            self.fc = torch.nn.Linear(16, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x)).mean(dim=(2, 3))
            return torch.nn.functional.normalize(self.fc(y), dim=1)

    path = tmp_path_factory.mktemp("sscd") / "sscd_tiny.torchscript.pt"
    torch.jit.script(Tiny().eval()).save(str(path))
    return path


def test_sscd_torchscript_loads_and_embeds(sscd_file: Path) -> None:
    enc = embed.load_encoder("sscd", weights=sscd_file, device="cpu")
    assert (enc.name, enc.dim, enc.size, enc.dtype) == ("sscd", 512, 288, "float32")
    assert enc.weights_sha256 == embed.file_sha256(sscd_file)
    vec = enc.encode([_img(1), _img(2, (90, 200)), _img(3)])
    assert vec.shape == (3, 512) and vec.dtype == np.float32
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    # batching must not change the vectors: same image alone and in a batch
    assert np.allclose(enc.encode([_img(2, (90, 200))])[0], vec[1], atol=1e-5)


@pytest.mark.gpu
def test_sscd_on_cuda_fp16_matches_cpu(sscd_file: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    gpu = embed.load_encoder("sscd", weights=sscd_file)  # default device and dtype: cuda, float16
    assert gpu.info["device"] == "cuda" and gpu.dtype == "float16"
    images = [_img(i, (160 + 8 * i, 120)) for i in range(6)]
    got, ref = gpu.encode(images), embed.load_encoder("sscd", weights=sscd_file, device="cpu").encode(images)
    assert got.dtype == np.float32 and np.abs(got - ref).max() < 5e-3
    assert np.all(np.sum(got * ref, axis=1) > 0.9999)


def test_sscd_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs --weights"):
        embed.load_encoder("dinov2")
    with pytest.raises(UsageError, match="takes no --weights"):
        embed.load_encoder("sscd-distilled", weights=tmp_path / "x.pt")
    with pytest.raises(UsageError, match="not found"):
        embed.load_encoder("sscd", weights=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(embed.GpicError, match="cannot load TorchScript"):
        embed.load_encoder("sscd", weights=bad)
    with pytest.raises(UsageError, match="unknown encoder"):
        embed.load_encoder("clip")


def test_efficientnet_from_wheel_separates_copies_from_distinct(sample_dir: Path) -> None:
    from gpic_lab.shards.reader import iter_samples

    enc = embed.load_encoder("efficientnet", device="cpu")
    assert enc.dim == 1280 and Path(enc.info["path"]).is_file()
    real = [s.open_image().convert("RGB") for s in iter_samples([sample_dir / "train"])]
    a = real[0]
    w, h = a.size
    copies = [a.resize((w * 2 // 3, h * 2 // 3)), _jpeg(a, 30), a.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
              ImageEnhance.Brightness(a).enhance(1.2)]
    vec = enc.encode([a, *real[1:], *copies])
    sims = vec @ vec[0]
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    n = len(real)
    assert sims[n:].min() > sims[1:n].max() + 0.2, sims


def test_efficientnet_thumb_is_the_weighted_sum_of_both_cosines() -> None:
    """The torch CPU encoder: cosine = 0.7 * EfficientNet cosine + 0.3 * thumbnail correlation, and the thumbnail
    part ignores brightness/contrast shifts but sees a colour change of the same layout."""
    enc, net = embed.load_encoder("efficientnet-thumb"), embed.load_encoder("efficientnet")
    assert embed.DEFAULT_ENCODER == "sscd" and enc.dim == 1280 + 3 * 16 * 16
    assert enc.cache_id() != net.cache_id() and enc.weights_sha256 == net.weights_sha256
    a, b = _img(30, (200, 150)), _img(31, (200, 150))
    vec, sem = enc.encode([a, b]), net.encode([a, b])
    thumb = embed.thumb_vector(a) @ embed.thumb_vector(b)
    assert vec[0] @ vec[1] == pytest.approx(0.7 * (sem[0] @ sem[1]) + 0.3 * thumb, abs=1e-4)
    shifted = Image.fromarray(np.clip(np.asarray(a, np.float32) * 0.8 + 30, 0, 255).astype(np.uint8))
    assert embed.thumb_vector(a) @ embed.thumb_vector(shifted) > 0.99
    recoloured = Image.fromarray(np.asarray(a)[:, :, ::-1].copy())  # same layout, channels swapped
    assert embed.thumb_vector(a) @ embed.thumb_vector(recoloured) < 0.9
    assert not embed.thumb_vector(Image.new("RGB", (40, 30), (9, 90, 200))).any()  # flat: no layout signal


@pytest.mark.parametrize("name", ["phash", "dhash"])
def test_hashes_cosine_is_hamming(name: str) -> None:
    enc = embed.load_encoder(name)
    a, b = _img(20, (256, 192)), _img(21, (256, 192))
    vec = enc.encode([a, a.resize((128, 96)), b])
    bits_fn = embed.phash_bits if name == "phash" else embed.dhash_bits
    ham = int((bits_fn(a) != bits_fn(b)).sum())
    assert vec[0] @ vec[2] == pytest.approx(1 - 2 * ham / 64, abs=1e-6)
    assert vec[0] @ vec[1] > 0.85 and ham > 10


def test_phash_matches_reference_dct() -> None:
    from scipy.fft import dctn

    img = _img(5, (64, 64))
    gray = embed._gray(img, 32, 32)
    ref = dctn(gray, norm="ortho")[:8, :8]
    assert np.array_equal(embed.phash_bits(img), (ref > np.median(ref)).ravel())


def test_cache_id_hashes_every_input(sscd_file: Path) -> None:
    base = embed.load_encoder("phash")
    ids = {base.cache_id()}
    for change in ({"size": 64}, {"crop": "center"}, {"dtype": "float16"}, {"weights_sha256": "x"}, {"name": "dhash"}):
        ids.add(embed.Encoder(**{**base.__dict__, **change}).cache_id())
    assert len(ids) == 6


def test_shard_cache_hits_and_invalidation(tiny_shards, tmp_path: Path) -> None:
    shards = [str(p) for p in tiny_shards(2, 3)]
    enc = embed.load_encoder("dhash")
    first, st1 = embed_cache.embed_shards(shards, enc, tmp_path / "cache")
    second, st2 = embed_cache.embed_shards(shards, enc, tmp_path / "cache")
    assert st1 == {"cache_hits": 0, "cache_misses": 2} and st2 == {"cache_hits": 2, "cache_misses": 0}
    assert np.array_equal(first.vectors, second.vectors) and list(first.keys) == list(second.keys)
    assert first.width.tolist() == [320, 321, 322] * 2 and first.meta[0]["license"] == "CC BY 2.0"
    _, st3 = embed_cache.embed_shards(shards, embed.load_encoder("phash"), tmp_path / "cache")
    assert st3["cache_misses"] == 2  # another encoder never reads this cache
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4


def test_16_bit_grey_pngs_are_embedded_at_their_full_range(tmp_path: Path) -> None:
    """Two different 16-bit grey PNGs must not both look white (PIL's convert clips them at 255)."""
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    samples = []
    for seed in (40, 41):
        grey = np.asarray(_img(seed, (256, 192)).convert("L"), np.uint16) * 257
        buf = io.BytesIO()
        Image.fromarray(grey).save(buf, "PNG")
        key = f"{seed:064d}"
        samples.append((key, new_record(key, 256, 192, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/",
                                        "Photo by Test via Flickr", "2026-01-01T00:00:00Z", "short", "A test.",
                                        ["nano", "lite", "full"]), buf.getvalue(), "png"))
    write_shard(tmp_path / "gpic_train_00000.tar", samples)
    emb, _ = embed_cache.embed_shards([str(tmp_path / "gpic_train_00000.tar")], embed.load_encoder("dhash"), tmp_path / "c")
    direct = embed.load_encoder("dhash").encode([_img(40, (256, 192)).convert("L"), _img(41, (256, 192)).convert("L")])
    assert np.allclose(emb.vectors, direct) and emb.vectors[0] @ emb.vectors[1] < 0.9


def test_dinov2_through_eval_module(tmp_path: Path) -> None:
    try:
        from gpic_lab.models import dinov2
    except ImportError:
        pytest.skip("gpic_lab.models.dinov2 (eval engineer) has not landed in this checkout")
    path = dinov2.build_tiny_dinov2(tmp_path / "dino")
    enc = embed.load_encoder("dinov2", weights=path, device="cpu")
    vec = enc.encode([_img(1), _img(2)])
    assert vec.shape == (2, enc.dim) and np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)


def test_streamed_vectors_come_from_the_cache(tiny_shards, tmp_path: Path) -> None:
    shards = [str(p) for p in tiny_shards(3, 2)]
    enc = embed.load_encoder("dhash")
    full, _ = embed_cache.embed_shards(shards, enc, tmp_path / "cache")
    lazy, stats = embed_cache.embed_shards(shards, enc, tmp_path / "cache", load_vectors=False)
    assert stats["cache_hits"] == 3 and lazy.vectors.shape == (0, 64) and len(lazy.sources) == 3
    assert len(lazy) == 6 and list(lazy.keys) == list(full.keys)
    streamed = list(lazy.chunks()())
    assert [len(c) for c in streamed] == [2, 2, 2]
    assert np.array_equal(np.concatenate(streamed), full.vectors)


def test_dinov2_bad_specs_are_one_line_errors(tmp_path: Path) -> None:
    pytest.importorskip("gpic_lab.models.dinov2")
    with pytest.raises(UsageError, match="not found"):
        embed.load_encoder("dinov2", weights=tmp_path / "nothing")
    bad = tmp_path / "bad_dir"
    bad.mkdir()
    with pytest.raises(embed.GpicError, match="dinov2"):
        embed.load_encoder("dinov2", weights=bad)
