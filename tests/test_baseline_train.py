"""Training the baseline: a killed run resumes exactly; DDP over gloo equals one process with the combined batch."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    from gpic_lab.baseline.text_encoder import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("enc") / "qwen3-tiny")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GPIC_LAB_STATE": str(tmp / "state"), "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", **extra}


def _train(shards: list[Path], out: Path, enc: Path, steps: int, *more: str, env: dict | None = None,
           launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), "-m", "gpic_lab.commands.cli", "train", *map(str, shards), "--config", "tiny",
           "--out", str(out), "--steps", str(steps), "--global-batch", "4", "--text-encoder", str(enc),
           "--log-every", "1", "--log-samples", "--threads", "1", "--device", "cpu", *more]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _samples(run: Path) -> list[tuple[str, ...]]:
    rows = [r for f in sorted((run / "samples").glob("rank*.csv")) for r in _rows(f)]
    return sorted((r["step"], r["rank"], r["slot"], r["index"], r["key"]) for r in rows)


def _exactly_once_per_epoch(run: Path, n_keys: int) -> None:
    epoch_of = {r["step"]: r["epoch"] for r in _rows(run / "train_log.csv")}
    by_epoch: dict[str, list[str]] = {}
    for step, _, _, _, key in _samples(run):
        by_epoch.setdefault(epoch_of[step], []).append(key)
    for epoch, keys in by_epoch.items():
        assert len(keys) == len(set(keys)), f"epoch {epoch}: a sample repeated"
    full = [keys for keys in by_epoch.values() if len(keys) == n_keys]
    assert full, "no complete epoch"


def test_kill_then_resume_continues_exactly(tiny_shards, tmp_path: Path, encoder_dir: Path) -> None:
    """SIGKILL after step 5 (checkpoint at step 3, where the two loader slots have delivered 2 and 1 batches), resume:
    the log (losses, grad norms, counters) and the samples each step saw equal an uninterrupted run's, and every
    epoch sees each sample once."""
    shards = tiny_shards(2, 10)
    env = _env(tmp_path)
    common = ("--workers", "2", "--ckpt-every", "3")
    straight = _train(shards, tmp_path / "straight", encoder_dir, 10, *common, env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _train(shards, tmp_path / "resumed", encoder_dir, 10, *common,
                    env=_env(tmp_path, GPIC_LAB_TRAIN_KILL_AT_STEP="5"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [r["step"] for r in _rows(tmp_path / "resumed" / "train_log.csv")][-1] == "5"
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("*.pt")) == ["step_00000003.pt"]
    resumed = _train(shards, tmp_path / "resumed", encoder_dir, 10, *common, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step_00000003.pt" in resumed.stderr
    columns = ("step", "epoch", "images", "images_seen", "loss", "lr", "grad_norm")
    a, b = _rows(tmp_path / "straight" / "train_log.csv"), _rows(tmp_path / "resumed" / "train_log.csv")
    assert [tuple(r[c] for c in columns) for r in a] == [tuple(r[c] for c in columns) for r in b]
    assert [r["step"] for r in b] == [str(i) for i in range(1, 11)]
    assert _samples(tmp_path / "straight") == _samples(tmp_path / "resumed")
    _exactly_once_per_epoch(tmp_path / "resumed", 20)


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from torch.nn.parallel import DistributedDataParallel
from gpic_lab.baseline import dist
from gpic_lab.baseline.config import get_config
from gpic_lab.baseline.model import build_model
from gpic_lab.baseline.step import StepContext, make_optimizer, train_step
from gpic_lab.baseline.text_encoder import TextEncoder
d = dist.setup("cpu")
cfg = get_config("tiny")
model = build_model(cfg, seed=0)
wrapped = DistributedDataParallel(model) if d.world > 1 else model
enc = TextEncoder.load(sys.argv[1], device="cpu", max_length=cfg.text_len)
ctx = StepContext(wrapped, model, enc, make_optimizer(model, lr=1e-3), None, cfg, d.device, d.world, 8, 2, seed=0)
images = torch.randint(0, 256, (8, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
batch = {"image": images, "key": [f"k{i}" for i in range(8)], "caption": [f"caption number {i}" for i in range(8)]}
share = 8 // d.world
mine = {k: v[d.rank * share:(d.rank + 1) * share] for k, v in batch.items()}
for step in range(4):
    train_step(ctx, mine, 0, 1e-3)
if d.main:
    torch.save(model.state_dict(), sys.argv[2])
dist.teardown(d)
"""


def test_ddp_over_two_gloo_processes_equals_one_process(tmp_path: Path, encoder_dir: Path) -> None:
    """4 AdamW steps (micro-batches of 2, so accumulation and no_sync run too): two gloo ranks with 4 samples each
    end with the same weights as one process with all 8 (float32 sums differ only in order)."""
    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_SCRIPT)
    env = _env(tmp_path)
    one = subprocess.run([sys.executable, str(script), str(encoder_dir), str(tmp_path / "one.pt")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), str(encoder_dir), str(tmp_path / "two.pt")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    from gpic_lab.baseline.config import get_config
    from gpic_lab.baseline.model import build_model

    init = build_model(get_config("tiny"), seed=0).state_dict()
    changed = [k for k in a if not torch.equal(a[k], init[k])]
    assert len(changed) >= 0.9 * len([k for k in a if k != "pos"]), sorted(set(a) - set(changed))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-6, msg=key)


def _uneven_shards(root: Path, sizes: tuple[int, ...]) -> list[Path]:
    """Train shards of different sizes with distinct images (so ranks run out of data at different steps)."""
    import hashlib

    from conftest import make_image

    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    paths = []
    for s, size in enumerate(sizes):
        rows = []
        for i in range(size):
            data = make_image(100 * s + i + 7, 300, 240)
            key = hashlib.sha256(data).hexdigest()
            meta = new_record(key, 300, 240, "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "a",
                              "2026-01-01T00:00:00Z", "short", f"image {s}-{i}", ["full"])
            rows.append((key, meta, data, "jpg"))
        paths.append(root / f"gpic_train_{s:05d}.tar")
        write_shard(paths[-1], rows)
    return paths


def test_torchrun_training_is_exactly_once_across_ranks_and_resumes_on_one_process(
        tmp_path: Path, encoder_dir: Path) -> None:
    """2 gloo ranks x 1 worker (per-rank batch 2) on shards of 7 and 4 samples: the rank that runs out first joins
    the last steps of the epoch with a zero-weight dummy, so epoch 0 is 4 steps of 4, 4, 2, 1 samples, each sample
    once. The same run then resumes in one process, which reads the same 2 loader slots with 2 workers."""
    shards = _uneven_shards(tmp_path, (7, 4))
    env = _env(tmp_path)
    run = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    first = _train(shards, run, encoder_dir, 5, "--workers", "1", "--ckpt-every", "100", env=env, launcher=torchrun)
    assert first.returncode == 0, first.stderr[-3000:]
    assert {r[1] for r in _samples(run)} == {"0", "1"}
    log = _rows(run / "train_log.csv")
    assert [(r["epoch"], r["images"]) for r in log[:4]] == [("0", "4"), ("0", "4"), ("0", "2"), ("0", "1")]
    from gpic_lab.baseline import checkpoint

    state = checkpoint.load(checkpoint.find(run))
    assert state["world"] == 2 and state["loader"]["slots"] == 2 and state["images_seen"] == 15
    second = _train(shards, run, encoder_dir, 8, "--workers", "1", "--ckpt-every", "100", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "2 DataLoader workers per rank" in second.stderr
    log = _rows(run / "train_log.csv")
    assert [r["step"] for r in log] == [str(i) for i in range(1, 9)]
    assert int(log[-1]["images_seen"]) == sum(int(r["images"]) for r in log)
    _exactly_once_per_epoch(run, 11)
