"""The frozen Qwen3 text encoder: fixed-length states, batch independence, loading by hub id from an HF cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gpic_lab.baseline import text_encoder as te  # noqa: E402
from gpic_lab.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return te.build_tiny_qwen3(tmp_path_factory.mktemp("qwen3") / "qwen3-tiny")


def test_tiny_qwen3_is_the_real_architecture_and_pads_to_fixed_length(tiny_dir: Path) -> None:
    from transformers import Qwen3Config

    enc = te.TextEncoder.load(tiny_dir, device="cpu", max_length=40)
    assert isinstance(enc.model.config, Qwen3Config) and enc.is_tiny and enc.hidden_size == 64
    assert not any(p.requires_grad for p in enc.model.parameters())
    captions = ["A red bicycle leans against a white wall.", "tag, tags, more tags", "x" * 500, ""]
    states = enc(captions)
    assert states.shape == (4, 40, 64) and torch.isfinite(states).all()
    ids = enc.tokenize(captions)
    assert ids["input_ids"].shape == (4, 40) and ids["attention_mask"][2].all()  # truncated to 40 tokens
    assert ids["attention_mask"][1, 0] == 1 and ids["attention_mask"][1, -1] == 0  # right padding
    alone = enc(captions[:1])  # a caption's states do not depend on the rest of the batch
    torch.testing.assert_close(alone[0], states[0], rtol=1e-5, atol=1e-5)
    assert te.build_tiny_qwen3(tiny_dir) == tiny_dir  # built once, then reused


def _install_in_hub_cache(model_dir: Path, hub: Path, repo_id: str, revision: str = "0" * 40) -> Path:
    """Lay a model directory out as the Hugging Face hub cache does (refs/main -> snapshots/<rev>/)."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_loads_by_hub_id_from_the_hf_cache_offline(tiny_dir: Path, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "hf"
    snapshot = _install_in_hub_cache(tiny_dir, home / "hub", "gpic-test/qwen3-tiny")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert te.resolve("gpic-test/qwen3-tiny").resolve() == snapshot.resolve()
    by_id = te.load_text_encoder("gpic-test/qwen3-tiny", device="cpu", max_length=16)
    by_dir = te.load_text_encoder(tiny_dir, device="cpu", max_length=16)
    assert torch.equal(by_id(["a cat on a mat"]), by_dir(["a cat on a mat"]))
    with pytest.raises(UsageError, match="not in the Hugging Face cache"):
        te.resolve("gpic-test/absent-model")
    with pytest.raises(UsageError, match="neither a directory nor a hub id"):
        te.resolve("no-such-dir")
