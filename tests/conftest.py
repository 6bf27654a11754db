"""Shared fixtures. Tests never write into the project: runs and figures go to a per-test temp dir."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "data" / "sample"


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path_factory.mktemp("outputs")
    monkeypatch.setenv("GPIC_LAB_RUNS", str(out / "papermill_runs"))
    monkeypatch.setenv("GPIC_LAB_FIGURES", str(out / "figures"))
    monkeypatch.setenv("GPIC_LAB_BENCH_RESULTS", str(out / "bench_results.jsonl"))
    monkeypatch.setenv("GPIC_LAB_ROOT", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed sample corpus (data/sample/)."""
    assert SAMPLE_DIR.is_dir(), "data/sample/ is missing: run `gpic-lab sample build --out data/sample`"
    return SAMPLE_DIR


def file_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path, with its bytes (to compare whole output directories)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_image(seed: int, width: int = 320, height: int = 240, fmt: str = "JPEG") -> bytes:
    """A deterministic synthetic RGB image (smooth gradient plus seeded noise) encoded as JPEG or PNG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, np.full_like(xx, (seed * 37) % 255)], -1)
    arr = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def tiny_shards(tmp_path: Path):
    """Factory: tiny_shards(n_shards=2, per_shard=4) -> list of valid GPIC shard paths in tmp_path."""
    from gpic_lab.shards.schema import CAPTION_TYPES, new_record
    from gpic_lab.shards.writer import write_shard

    def build(n_shards: int = 2, per_shard: int = 4, prefix: str = "gpic_train") -> list[Path]:
        paths = []
        for s in range(n_shards):
            samples = []
            for i in range(per_shard):
                seed = s * 1000 + i
                fmt = "PNG" if i % 5 == 4 else "JPEG"
                data = make_image(seed, 320 + i, 240, fmt)
                key = hashlib.sha256(data).hexdigest()
                meta = new_record(key, 320 + i, 240, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                                  f"Photo {seed} by Test Author via Flickr", "2026-01-01T00:00:00Z",
                                  CAPTION_TYPES[i % 4], f"A synthetic gradient image number {seed}.",
                                  ["nano", "lite", "full"])
                samples.append((key, meta, data, "png" if fmt == "PNG" else "jpg"))
            path = tmp_path / f"{prefix}_{s:05d}.tar"
            write_shard(path, samples)
            paths.append(path)
        return paths

    return build
