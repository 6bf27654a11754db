"""`train(settings)`: the baseline's training run (one process, or one rank of a torchrun job).

GPIC's recipe: global batch 256, AdamW lr 1e-4, betas (0.9, 0.95), no weight decay, constant LR after 0.1%
warmup, bf16 mixed precision, 10% caption dropout, one epoch of GPIC-Full at 256x256. Data: GPIC's loader
(crop [0.8, 1.0] + resize 256, exactly once across ranks and workers) in a resumable order (`data`).
A run directory holds run.json (settings), train_log.csv, checkpoints/ and, with `log_samples`, samples/.
Running again with the same directory resumes from the newest checkpoint and continues exactly.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

log = logging.getLogger("gpic_lab.baseline")
KILL_ENV = "GPIC_LAB_TRAIN_KILL_AT_STEP"  # fault injection for the resume tests: SIGKILL after this step


@dataclass
class TrainSettings:
    """Options of `gpic-lab train` (see the command's --help for each)."""

    config: str
    shards: list[str]
    out: str
    tier: str | None = None
    steps: int | None = None
    epochs: int | None = None
    global_batch: int = 256
    micro_batch: int | None = None
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup: float = 0.001  # fraction of the run's steps (GPIC: 0.1%)
    warmup_steps: int | None = None
    ema_decay: float = 0.9999  # OUR ASSUMPTION (see ema.py)
    grad_clip: float | None = 1.0  # OUR ASSUMPTION: PixelGen's configs clip the gradient norm at 1.0
    cond_dropout: float = 0.1
    seed: int = 0
    workers: int = 4
    ckpt_every: int = 1000
    keep_ckpts: int = 2
    log_every: int = 10
    text_encoder: str | None = None
    model_cache: str | None = None
    device: str | None = None
    bf16: bool = True  # autocast on CUDA (CPU runs in float32)
    log_samples: bool = False
    grad_checkpoint: bool = False
    compile: bool = False
    shuffle_buffer: int = 512
    threads: int | None = None  # torch CPU threads (1 is fastest on a busy CPU)
    extra: dict[str, Any] = field(default_factory=dict)


def _check(s: TrainSettings, world: int) -> None:
    if (s.steps is None) == (s.epochs is None):
        raise UsageError("give exactly one of --steps N or --epochs N")
    if (s.steps is not None and s.steps < 1) or (s.epochs is not None and s.epochs < 1):
        raise UsageError("--steps/--epochs must be >= 1")
    if s.global_batch % world:
        raise UsageError(f"--global-batch {s.global_batch} is not divisible by the {world} ranks")
    if s.micro_batch is not None and s.micro_batch < 1:
        raise UsageError("--micro-batch must be >= 1")


def _resume_state(run_dir: Path, s: TrainSettings) -> dict[str, Any] | None:
    from gpic_lab.baseline import checkpoint

    path = checkpoint.latest(run_dir)
    if path is None:
        return None
    state = checkpoint.load(path)
    saved = state["settings"]
    for name in ("config", "global_batch", "seed"):
        if saved[name] != getattr(s, name):
            raise UsageError(f"resume: {run_dir} was trained with {name}={saved[name]!r}, not {getattr(s, name)!r}")
    log.info("resuming from %s (step %d, epoch %d)", path.name, state["step"], state["loader"]["epoch"])
    return state


def _total_steps(s: TrainSettings) -> int:
    if s.steps is not None:
        return s.steps
    from gpic_lab.baseline.data import estimate_epoch_samples

    return s.epochs * math.ceil(estimate_epoch_samples(s.shards, s.tier) / s.global_batch)


def _build(s: TrainSettings, d: Any, state: dict[str, Any] | None) -> Any:
    """Model (+ DDP), text encoder, optimizer, EMA -> a StepContext."""
    import torch

    from gpic_lab.baseline import config as C
    from gpic_lab.baseline.ema import EMA
    from gpic_lab.baseline.model import build_model
    from gpic_lab.baseline.step import StepContext, make_optimizer
    from gpic_lab.baseline.text_encoder import load_text_encoder

    cfg = C.from_dict(state["config"]) if state else C.get_config(s.config)
    model = build_model(cfg, d.device, seed=s.seed, grad_checkpoint=s.grad_checkpoint)
    if state:
        model.load_state_dict(state["model"])
    encoder = load_text_encoder(s.text_encoder or cfg.text_encoder, device=d.device, max_length=cfg.text_len,
                                cache=s.model_cache)
    if encoder.hidden_size != cfg.text_dim:
        raise UsageError(f"text encoder hidden size {encoder.hidden_size} != config text_dim {cfg.text_dim}")
    wrapped: Any = model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[d.device] if d.device.type == "cuda" else None,
                                          gradient_as_bucket_view=True)
    if s.compile:
        wrapped = torch.compile(wrapped)
    opt = make_optimizer(model, s.lr, tuple(s.betas), s.weight_decay)
    ema = EMA(model, s.ema_decay) if d.main else None
    if state:
        opt.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
    local = s.global_batch // d.world
    return StepContext(wrapped, model, encoder, opt, ema, cfg, d.device, d.world, s.global_batch,
                       s.micro_batch or local, s.seed, s.cond_dropout, s.grad_clip, s.bf16)


def _batches(s: TrainSettings, d: Any, epoch: int, loader_state: dict[str, Any] | None) -> Any:
    from gpic_lab.baseline.data import OrderedBatches

    workers = s.workers
    if loader_state is not None and int(loader_state["slots"]) != d.world * max(1, workers):
        slots = int(loader_state["slots"])
        if slots % d.world:
            raise UsageError(f"resume: the run used {slots} loader slots, not divisible by {d.world} ranks")
        workers = slots // d.world
        log.info("resume: %d DataLoader workers per rank to keep the run's %d loader slots", workers, slots)
    return OrderedBatches(s.shards, s.tier, d.rank, d.world, workers, s.global_batch // d.world, seed=s.seed,
                          epoch=epoch, state=loader_state, shuffle_buffer=s.shuffle_buffer)


class _Meter:
    """Window statistics between log rows: images, data wait, compute (CUDA events or wall clock)."""

    def __init__(self, device: Any) -> None:
        self.cuda = device.type == "cuda"
        self.reset()

    def reset(self) -> None:
        self.t0, self.images, self.steps, self.data_s, self.busy_s = time.perf_counter(), 0, 0, 0.0, 0.0
        self.events: list[Any] = []

    def bracket(self) -> Any:
        import torch

        if not self.cuda:
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def close(self, start: Any, images: int) -> None:
        self.steps, self.images = self.steps + 1, self.images + images
        if self.cuda:
            self.events.append((start, self.bracket()))
        else:
            self.busy_s += time.perf_counter() - start

    def row(self) -> dict[str, float]:
        import torch

        wall = time.perf_counter() - self.t0
        busy = self.busy_s / wall if wall > 0 else 0.0
        if self.cuda and self.events:
            torch.cuda.synchronize()
            span = self.events[0][0].elapsed_time(self.events[-1][1])
            busy = sum(a.elapsed_time(b) for a, b in self.events) / span if span > 0 else 0.0
        return {"images_per_s": self.images / wall if wall > 0 else 0.0, "step_s": wall / max(1, self.steps),
                "data_s": self.data_s / max(1, self.steps), "gpu_busy": busy}


def _save(run_dir: Path, s: TrainSettings, d: Any, ctx: Any, batches: Any, step: int, seen: int, logs: Any) -> None:
    from gpic_lab.baseline import checkpoint, dist
    from gpic_lab.baseline.data import merge_states

    logs.flush()
    loader = merge_states(dist.gather_objects(d, batches.state_dict()))
    if d.main:
        path = checkpoint.save(run_dir, {
            "step": step, "images_seen": seen, "config": ctx.cfg.to_dict(), "settings": asdict(s),
            "model": ctx.raw.state_dict(), "ema": ctx.ema.state_dict() if ctx.ema else None,
            "optimizer": ctx.optimizer.state_dict(), "loader": loader, "world": d.world,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, keep=s.keep_ckpts)
        log.info("checkpoint %s (step %d, %d images)", path.name, step, seen)
    dist.barrier(d)


def _maybe_kill(step: int, logs: Any) -> None:
    if os.environ.get(KILL_ENV) == str(step):
        logs.flush()
        log.warning("%s=%d: killing this process (SIGKILL)", KILL_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Window:
    """Loss and sample counts since the last log row."""

    loss: Any = None
    n: int = 0
    norm: Any = None


def _log_row(d: Any, logs: Any, meter: _Meter, w: _Window, step: int, epoch: int, seen: int, lr: float,
             started: float) -> None:
    from gpic_lab.baseline import dist

    loss = dist.all_sum(d, [float(w.loss)])[0] / max(1, w.n)
    logs.metrics({"step": step, "epoch": epoch, "images": w.n, "images_seen": seen, "loss": loss, "lr": lr,
                  "grad_norm": float(w.norm), "elapsed_s": round(time.perf_counter() - started, 3), **meter.row()})
    meter.reset()
    w.loss, w.n = None, 0


def train(s: TrainSettings) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict (steps, images, epoch, seconds)."""
    from gpic_lab.baseline import dist
    from gpic_lab.baseline.step import lr_at, train_step
    from gpic_lab.baseline.trainlog import TrainLog
    from gpic_lab.fsio import write_json_atomic

    d = dist.setup(s.device)
    _check(s, d.world)
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    run_dir = Path(s.out)
    state = _resume_state(run_dir, s)
    total = _total_steps(s)
    warmup = s.warmup_steps if s.warmup_steps is not None else max(1, math.ceil(s.warmup * total))
    ctx = _build(s, d, state)
    step, seen = (state["step"], state["images_seen"]) if state else (0, 0)
    batches = _batches(s, d, 0, state["loader"] if state else None)
    state = None  # free the checkpoint's tensors
    if d.main:
        write_json_atomic(run_dir / "run.json", {"settings": asdict(s), "config": ctx.cfg.to_dict(), "world": d.world,
                                                 "total_steps": total, "warmup_steps": warmup})
        log.info("train %s: %d steps (warmup %d), global batch %d on %d rank(s), device %s", ctx.cfg.name, total,
                 warmup, s.global_batch, d.world, d.device)
    logs = TrainLog(run_dir, d.main, d.rank, resume_step=step, total_steps=total, samples=s.log_samples)
    meter, w, started, saved = _Meter(d.device), _Window(), time.perf_counter(), (step, -1)
    try:
        while s.epochs is None or batches.epoch < s.epochs:
            it, ended = iter(batches), False
            while s.steps is None or step < s.steps:
                t_wait = time.perf_counter()
                batch = next(it, None)
                meter.data_s += time.perf_counter() - t_wait
                n_global, ranks_with_data = dist.all_sum(d, [len(batch["key"]) if batch else 0, 1 if batch else 0],
                                                         control=True)
                if ranks_with_data == 0:
                    ended = True
                    break
                start = meter.bracket()
                loss_sum, w.norm = train_step(ctx, batch, batches.epoch, lr_at(step, s.lr, warmup))
                meter.close(start, int(n_global))
                if batch is not None:
                    batches.commit(batch)
                    logs.samples(step + 1, batch)
                step, seen, w.n = step + 1, seen + int(n_global), w.n + int(n_global)
                w.loss = loss_sum if w.loss is None else w.loss + loss_sum
                if step % s.log_every == 0:
                    _log_row(d, logs, meter, w, step, batches.epoch, seen, lr_at(step - 1, s.lr, warmup), started)
                logs.advance()
                if step % s.ckpt_every == 0:
                    _save(run_dir, s, d, ctx, batches, step, seen, logs)
                    saved = (step, batches.epoch)
                _maybe_kill(step, logs)
            if not ended:
                break
            log.info("epoch %d ended at step %d (%d images seen)", batches.epoch, step, seen)
            batches = _batches(s, d, batches.epoch + 1, None)
        if w.n:
            _log_row(d, logs, meter, w, step, batches.epoch, seen, lr_at(step - 1, s.lr, warmup), started)
        if saved != (step, batches.epoch):
            _save(run_dir, s, d, ctx, batches, step, seen, logs)
    finally:
        logs.close()
    summary = {"steps": step, "images_seen": seen, "epoch": batches.epoch, "run_dir": str(run_dir),
               "seconds": round(time.perf_counter() - started, 2), "world": d.world, "device": str(d.device)}
    if d.main:
        write_json_atomic(run_dir / "summary.json", summary)
    dist.teardown(d)
    return summary
