"""The baseline's CUDA paths (bf16 autocast, pinned non-blocking copies, CUDA generators, CUDA-event GPU-busy share).
Skipped without CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


def test_tiny_trains_in_bf16_and_samples_deterministically_on_cuda(tmp_path: Path, sample_dir: Path) -> None:
    from gpic_lab.baseline.generate import generate
    from gpic_lab.baseline.text_encoder import build_tiny_qwen3
    from gpic_lab.baseline.train import TrainSettings, train
    from gpic_lab.baseline.trainlog import read_log

    enc = build_tiny_qwen3(tmp_path / "qwen3-tiny")
    shards = [str(sample_dir / "train")]
    summary = train(TrainSettings(config="tiny", shards=shards, out=str(tmp_path / "run"), steps=6, global_batch=4,
                                  workers=2, text_encoder=str(enc), device="cuda", log_every=2, ckpt_every=3))
    assert summary["device"].startswith("cuda") and summary["steps"] == 6
    log = read_log(tmp_path / "run" / "train_log.csv")
    assert log["loss"].notna().all() and ((log["gpu_busy"] > 0) & (log["gpu_busy"] <= 1.0 + 1e-6)).all()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"key": f"k{i}", "caption": f"caption {i}", "caption_type": "short"}) + "\n"
                               for i in range(5)))
    for out in ("a", "b"):
        generate(tmp_path / "run", prompts, [1.0, 4.0], tmp_path / out, steps=8, batch=3, device="cuda", progress=False)
    for sub in ("cfg_1", "cfg_4"):
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / sub).iterdir()}
        assert len(a) == 5 and a == {p.name: p.read_bytes() for p in (tmp_path / "b" / sub).iterdir()}


@pytest.mark.slow
def test_gpic_1p1b_step_in_bf16_on_cuda() -> None:
    """One AdamW step of the 1.1B denoiser with a Qwen3-1.7B-shaped encoder at batch 8: finite loss, memory noted."""
    from gpic_lab.baseline.config import get_config
    from gpic_lab.baseline.model import build_model
    from gpic_lab.baseline.step import StepContext, make_optimizer, train_step
    from gpic_lab.baseline.text_encoder import random_qwen3_1p7b

    cfg = get_config("gpic-1.1b")
    model = build_model(cfg, "cuda", seed=0)
    ctx = StepContext(model, model, random_qwen3_1p7b("cuda", max_length=cfg.text_len), make_optimizer(model), None,
                      cfg, torch.device("cuda"), 1, 8, 8, seed=0, bf16=True)
    batch = {"image": torch.randint(0, 256, (8, 3, 256, 256), dtype=torch.uint8).pin_memory(),
             "key": [f"k{i}" for i in range(8)], "caption": ["a photo"] * 8}
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        loss, norm = train_step(ctx, batch, 0, 1e-4)
    assert torch.isfinite(loss) and torch.isfinite(norm)
    print(f"peak memory at batch 8: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
