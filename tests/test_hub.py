"""Models where Hugging Face users keep them: a tiny model saved in the standard cache layout
(~/.cache/huggingface/hub/models--org--name/snapshots/<rev>/) loads by hub id with HF_HUB_OFFLINE=1 and nothing else
configured (HF_HOME unset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.models import hub

ROOT = Path(__file__).resolve().parents[1]
REV = "0123456789abcdef0123456789abcdef01234567"


def _cache_model(home: Path, repo: str, build) -> Path:
    """Save a model into HOME's default HF cache the way `hf download` lays it out (refs/main -> snapshot)."""
    org, name = repo.split("/")
    root = home / ".cache" / "huggingface" / "hub" / f"models--{org}--{name}"
    snapshot = build(root / "snapshots" / REV)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REV)
    return snapshot


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_", "TRANSFORMERS_", "HUGGINGFACE"))}
    return {**env, "HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def test_local_paths_and_hub_ids() -> None:
    assert hub.resolve(ROOT) == ROOT
    assert hub.is_hub_id("Qwen/Qwen3-VL-4B-Instruct") and hub.is_hub_id("facebook/dinov2-large@main")
    for not_id in ("tiny", "a/b/c", "/abs/path", "s3://bucket/x", "./rel/dir"):
        assert not hub.is_hub_id(not_id)
    with pytest.raises(UsageError, match="not a Hugging Face hub id"):
        hub.resolve("no/such/dir")


@pytest.mark.slow
def test_tiny_models_load_by_hub_id_from_the_default_cache_offline(tmp_path: Path, tiny_shards) -> None:
    from gpic_lab.models.dinov2 import build_tiny_dinov2
    from gpic_lab.models.qwen_vl import build_tiny_qwen3vl

    home = tmp_path / "home"
    _cache_model(home, "gpic-test/tiny-qwen3vl", build_tiny_qwen3vl)
    _cache_model(home, "gpic-test/tiny-dinov2", build_tiny_dinov2)
    shard = tiny_shards(n_shards=1, per_shard=3)[0]
    script = (
        "from gpic_lab.models import hub, qwen_vl\n"
        "from PIL import Image\n"
        "model, proc = qwen_vl.load_qwen3vl('gpic-test/tiny-qwen3vl', device='cpu', min_pixels=32*32, max_pixels=64*64)\n"
        "print('caption', repr(qwen_vl.generate(model, proc, [Image.new('RGB', (80, 60))], ['Describe.'], 3)))\n"
        "print('size', proc.image_processor.size.shortest_edge, proc.image_processor.size.longest_edge)\n"
        "try:\n"
        "    hub.resolve('gpic-test/absent')\n"
        "except Exception as exc:\n"
        "    print('miss', type(exc).__name__, exc)\n"
    )
    env = _clean_env(home)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "caption ['" in proc.stdout and "size 1024 4096" in proc.stdout
    assert "miss UsageError" in proc.stdout and "HF_HUB_OFFLINE=1" in proc.stdout
    assert str(home / ".cache" / "huggingface" / "hub") in proc.stdout
    out = tmp_path / "ref"
    cli = [sys.executable, "-m", "gpic_lab.commands.cli", "refstats", str(shard), "--model", "gpic-test/tiny-dinov2",
           "--out", str(out), "--progress", "off"]
    proc = subprocess.run(cli, env={**env, "GPIC_LAB_STATE": str(tmp_path / "state")}, capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(out.glob("*.npz"))) == 1
