"""gpic_lab.models.qwen_vl: tiny random Qwen3-VL build/save/load and batched generation through the real transformers code."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.models import qwen_vl


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qwen_vl.build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny_qwen"))


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path):
    return qwen_vl.load_qwen3vl(tiny_dir, device="cpu")


def _images():
    from conftest import make_image
    from PIL import Image

    return [Image.open(io.BytesIO(make_image(1, 320, 240))), Image.open(io.BytesIO(make_image(2, 120, 300, "PNG"))),
            Image.new("L", (90, 90), 40), Image.new("RGBA", (256, 128), (10, 200, 30, 128))]


def test_build_writes_loadable_dir(tiny_dir: Path, loaded) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    assert qwen_vl.is_tiny(tiny_dir)
    model, processor = loaded
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert type(processor).__name__ == "ImageOnlyQwen3VLProcessor"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert processor.tokenizer.padding_side == "left"


def test_batched_generation_matches_one_at_a_time(loaded) -> None:
    model, processor = loaded
    images = _images()
    prompts = ["Describe.", "Write a much longer prompt for this one, please.", "Tags.", "Short caption"]
    batched = qwen_vl.generate(model, processor, images, prompts, max_new_tokens=6, return_details=True)
    single = [qwen_vl.generate(model, processor, [im], [p], max_new_tokens=6, return_details=True)[0]
              for im, p in zip(images, prompts, strict=True)]
    assert [b["text"] for b in batched] == [s["text"] for s in single]
    assert all(1 <= b["n_tokens"] <= 6 for b in batched)
    assert all(b["truncated"] == (b["n_tokens"] == 6) for b in batched)
    assert qwen_vl.generate(model, processor, images[:2], prompts[:2], max_new_tokens=6) == \
        [b["text"] for b in batched[:2]]


def test_greedy_is_deterministic_and_builds_reproducibly(loaded, tmp_path: Path) -> None:
    model, processor = loaded
    images = _images()[:2]
    first = qwen_vl.generate(model, processor, images, ["a", "b"], max_new_tokens=5)
    assert first == qwen_vl.generate(model, processor, images, ["a", "b"], max_new_tokens=5)
    other_model, other_proc = qwen_vl.load_qwen3vl(qwen_vl.build_tiny_qwen3vl(tmp_path / "again"), device="cpu")
    assert qwen_vl.generate(other_model, other_proc, images, ["a", "b"], max_new_tokens=5) == first


def test_pixel_bounds_change_the_visual_grid(tiny_dir: Path) -> None:
    from PIL import Image

    image = Image.new("RGB", (640, 480), "white")
    _, small = qwen_vl.load_qwen3vl(tiny_dir, device="cpu", min_pixels=32 * 32, max_pixels=64 * 64)
    _, large = qwen_vl.load_qwen3vl(tiny_dir, device="cpu", min_pixels=128 * 128, max_pixels=256 * 256)
    n_small = qwen_vl.prepare_inputs(small, [image], ["x"])["image_grid_thw"].prod().item()
    n_large = qwen_vl.prepare_inputs(large, [image], ["x"])["image_grid_thw"].prod().item()
    assert n_small < n_large
    assert n_large * 16 * 16 <= 256 * 256 * 1.1
    inputs = qwen_vl.prepare_inputs(large, [image], ["x"])
    assert "mm_token_type_ids" in inputs


def test_bad_inputs_are_one_line_errors(tiny_dir: Path, loaded, tmp_path: Path) -> None:
    model, processor = loaded
    with pytest.raises(UsageError, match="2 images but 1 prompts"):
        qwen_vl.generate(model, processor, _images()[:2], ["only one"])
    assert qwen_vl.generate(model, processor, [], []) == []
    with pytest.raises(UsageError, match="not found"):
        qwen_vl.load_qwen3vl(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no config.json"):
        qwen_vl.load_qwen3vl(tmp_path / "empty")
    with pytest.raises(UsageError, match="min_pixels"):
        qwen_vl.load_qwen3vl(tiny_dir, device="cpu", min_pixels=10_000, max_pixels=100)
    with pytest.raises(UsageError, match="not in the HF cache"):
        qwen_vl.load_qwen3vl("Qwen/Definitely-Not-Cached-Model")


def test_cuda_request_without_cuda_is_usage_error(tiny_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by test_gpu_bf16_load")
    with pytest.raises(UsageError, match="CUDA is not available"):
        qwen_vl.load_qwen3vl(tiny_dir, device="cuda")


@pytest.mark.gpu
def test_gpu_bf16_load(tiny_dir: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    model, processor = qwen_vl.load_qwen3vl(tiny_dir)
    assert model.dtype == torch.bfloat16 and model.device.type == "cuda"
    assert model.config._attn_implementation in ("sdpa", "flash_attention_2")
    out = qwen_vl.generate(model, processor, _images()[:2], ["a", "b"], max_new_tokens=4)
    assert len(out) == 2


def test_random_4b_has_the_published_architecture() -> None:
    model, processor = qwen_vl.random_qwen3vl_4b(device="meta")
    n = sum(p.numel() for p in model.parameters())
    assert 4.2e9 < n < 4.7e9, n  # Qwen3-VL-4B: ~4.4B parameters (tied embeddings)
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_key_value_heads, text.vocab_size) == (2560, 36, 8, 151936)
    assert model.config.vision_config.depth == 24 and model.config._attn_implementation == "sdpa"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"


def test_random_small_shape_generates_fixed_lengths() -> None:
    shape = {"text": {**qwen_vl.TINY_SHAPE["text"], "vocab_size": 1000}, "vision": qwen_vl.TINY_SHAPE["vision"]}
    model, processor = qwen_vl.random_qwen3vl_4b(device="cpu", shape=shape, min_pixels=32 * 32, max_pixels=64 * 64)
    out = qwen_vl.generate(model, processor, _images()[:2], ["a", "bb"], max_new_tokens=5, min_new_tokens=5,
                        return_details=True)
    assert [r["n_tokens"] for r in out] == [5, 5] and all(r["truncated"] for r in out)


def test_chunked_preprocessing_equals_one_call(loaded) -> None:
    import torch

    _, processor = loaded
    images, prompts = _images(), ["Describe.", "A much longer prompt than the others here.", "Tags.", "Short"]
    one = qwen_vl.prepare_inputs(processor, images, prompts)
    three = qwen_vl.prepare_inputs(processor, images, prompts, workers=3)
    assert set(one.keys()) == set(three.keys())
    for key in one.keys():
        assert torch.equal(one[key], three[key]), key
