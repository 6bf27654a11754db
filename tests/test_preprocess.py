"""Protocol preprocessing: exact tensors vs a hand computation (torchvision ToTensor/Normalize semantics)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gpic_lab.evaluation import preprocess as pp

torch = pytest.importorskip("torch")


def hand_tensor(img: Image.Image) -> np.ndarray:
    """torchvision: Resize((224,224), BICUBIC) on PIL -> ToTensor -> Normalize, written out by hand in torch."""
    small = img.convert("RGB").resize((224, 224), Image.BICUBIC)
    t = torch.from_numpy(np.array(small)).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return t.sub(mean).div(std).numpy()


def test_constant_image_exact_values() -> None:
    img = Image.new("RGB", (256, 256), (255, 0, 128))
    x = pp.dino_batch([img])
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    expect = (np.float32([1.0, 0.0, np.float32(128) / np.float32(255)]) - pp.MEAN) / pp.STD
    for c in range(3):
        assert np.all(x[0, c] == np.float32(expect[c]))


def test_gradient_image_matches_hand_computation_exactly() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    got = pp.dino_batch([img, img.transpose(Image.FLIP_LEFT_RIGHT)], threads=2)
    assert np.array_equal(got[0], hand_tensor(img))
    assert np.array_equal(got[1], hand_tensor(img.transpose(Image.FLIP_LEFT_RIGHT)))


def test_stretch_not_crop() -> None:
    """A non-square image is stretched to 224x224 (left half red, right half blue stays left/right halves)."""
    arr = np.zeros((100, 400, 3), dtype=np.uint8)
    arr[:, :200, 0] = 255
    arr[:, 200:, 2] = 255
    x = pp.dino_batch([Image.fromarray(arr)])[0]
    red = (1 - 0.485) / 0.229
    assert np.isclose(x[0, 112, 5], red, atol=1e-5) and np.isclose(x[0, 112, 218], -0.485 / 0.229, atol=1e-5)


def test_reference_center_crop_then_bicubic_256() -> None:
    arr = np.zeros((300, 500, 3), dtype=np.uint8)
    arr[:, 100:400] = 200  # the centered 300x300 square is uniform; the margins are black
    arr[:, 100, 1] = 10  # first kept column
    out = pp.reference_256(Image.fromarray(arr))
    assert out.size == (256, 256) and out.mode == "RGB"
    expect = Image.fromarray(arr[:, 100:400]).resize((256, 256), Image.BICUBIC)
    assert np.array_equal(np.asarray(out), np.asarray(expect))
    tall = pp.center_crop_square(Image.new("L", (31, 80)))
    assert tall.size == (31, 31)
    gray = pp.reference_256(Image.new("L", (256, 256), 77))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]


def test_encoded_reference_path_equals_two_step_pipeline() -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (240, 330, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    got = pp.reference_batch([buf.getvalue()])
    assert np.array_equal(got[0], hand_tensor(pp.reference_256(img)))
    gen = pp.reference_batch([buf.getvalue()], reference=False)
    assert np.array_equal(gen[0], hand_tensor(img))
    assert pp.dino_batch([]).shape == (0, 3, 224, 224)


def test_bench_sides_produce_identical_tensors() -> None:
    from gpic_lab.benches import eval as bench

    blobs = bench.make_pool(6, 2)
    res = bench.preprocessing(blobs, threads=2, chunk=4)
    assert res["identical_tensors"] and res["n"] == 6 and res["ours_images_per_s"] > 0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_normalize_torch_is_bit_identical_to_numpy(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA")
    u8 = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    got = pp.normalize_torch(torch.from_numpy(u8).to(device))
    assert got.shape == (3, 3, 224, 224) and got.dtype == torch.float32
    assert np.array_equal(got.cpu().numpy(), pp.normalize(u8))
    assert pp.normalize_torch(torch.from_numpy(u8), torch.bfloat16).dtype == torch.bfloat16
