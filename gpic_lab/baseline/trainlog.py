"""Training logs: a CSV row per logged step (and TensorBoard scalars when tensorboard is installed), an optional
per-sample CSV (which keys each step consumed), a tqdm progress line with rate and ETA, timestamped milestones.

On resume both CSVs are cut back to the checkpoint's step, so a killed and resumed run leaves the same rows as an
uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("gpic_lab.baseline")

COLUMNS = ["step", "epoch", "images", "images_seen", "loss", "lr", "grad_norm", "images_per_s", "step_s", "data_s",
           "gpu_busy", "elapsed_s", "time_utc"]
SAMPLE_COLUMNS = ["step", "rank", "slot", "index", "key"]


def truncate_csv(path: Path, last_step: int) -> int:
    """Keep the header and the rows with step <= last_step (atomic rewrite); returns the rows kept."""
    from gpic_lab.fsio import atomic_path

    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return 0
    kept = [r for r in rows[1:] if r and int(r[0]) <= last_step]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows([rows[0], *kept])
    return len(kept)


def read_log(path: str | Path) -> Any:
    """The training log as a DataFrame."""
    import pandas as pd

    return pd.read_csv(path)


class TrainLog:
    """Writers for rank 0 (metrics) and every rank (samples, when `samples` is set).

    Args:
        run_dir: the run directory; main: this rank writes the metric CSV, TensorBoard and the progress bar.
        rank: this rank (names the per-rank sample CSV); resume_step: cut the CSVs back to this step first.
        total_steps: for the progress bar's ETA (None when unknown); samples: write samples/rank{R}.csv.
    """

    def __init__(self, run_dir: Path, main: bool, rank: int, resume_step: int = 0, total_steps: int | None = None,
                 samples: bool = False) -> None:
        self.main, self.rank = main, rank
        self.path = run_dir / "train_log.csv"
        self.sample_path = run_dir / "samples" / f"rank{rank}.csv" if samples else None
        self._metrics = self._open(self.path, COLUMNS, resume_step) if main else None
        self._samples = self._open(self.sample_path, SAMPLE_COLUMNS, resume_step) if self.sample_path else None
        self.tb = self._tensorboard(run_dir) if main else None
        self.bar = self._bar(total_steps, resume_step) if main else None

    @staticmethod
    def _open(path: Path, columns: list[str], resume_step: int) -> Any:
        path.parent.mkdir(parents=True, exist_ok=True)
        truncate_csv(path, resume_step)
        fresh = not path.exists() or path.stat().st_size == 0
        fh = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        writer = csv.writer(fh)
        if fresh:
            writer.writerow(columns)
        return fh, writer

    @staticmethod
    def _tensorboard(run_dir: Path) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(run_dir / "tensorboard"))

    @staticmethod
    def _bar(total: int | None, initial: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train", smoothing=0.05)

    def samples(self, step: int, batch: dict[str, Any]) -> None:
        """Record which samples one step consumed on this rank."""
        if self._samples is None:
            return
        _, writer = self._samples
        for slot, index, key in zip(batch["slot"].tolist(), batch["index"].tolist(), batch["key"], strict=True):
            writer.writerow([step, self.rank, slot, index, key])

    def metrics(self, row: dict[str, Any]) -> None:
        """One metric row (rank 0): CSV, TensorBoard, progress bar postfix."""
        if not self.main:
            return
        row = {**row, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        fh, writer = self._metrics
        writer.writerow([_fmt(row.get(c)) for c in COLUMNS])
        if self.tb is not None:
            for name in ("loss", "lr", "grad_norm", "images_per_s", "gpu_busy"):
                if row.get(name) is not None:
                    self.tb.add_scalar(f"train/{name}", row[name], row["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.1f}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def flush(self) -> None:
        """Make every row written so far durable (called before a checkpoint)."""
        for handle in (self._metrics, self._samples):
            if handle is not None:
                handle[0].flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.flush()
        for handle in (self._metrics, self._samples):
            if handle is not None:
                handle[0].close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.9g}"
    return "" if value is None else value
