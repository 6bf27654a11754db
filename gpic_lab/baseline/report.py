"""Notebook 08's figures and tables: loss curve, sample grid per CFG, metrics beside GPIC's Table 3, cost.

Every function takes file paths or plain values and returns a DataFrame or a matplotlib figure.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

METRICS = ("fd", "precision", "recall", "density", "coverage")
# GPIC Table 3: JiT-T2I (1.1B) after one epoch of GPIC-Full, 50K samples vs the 1M test set, DINOv2 ViT-L/14.
GPIC_TABLE3: dict[float, dict[str, float]] = {
    1.75: {"fd": 204.01, "precision": 0.917, "recall": 0.530, "density": 1.034, "coverage": 0.806},
    4.0: {"fd": 87.80, "precision": 0.933, "recall": 0.765, "density": 1.012, "coverage": 0.906},
    6.25: {"fd": 76.25, "precision": 0.942, "recall": 0.792, "density": 1.014, "coverage": 0.908},
}
H100_BF16_DENSE = 989e12  # FLOP/s, NVIDIA H100 SXM datasheet (dense bf16)


def prepare_eval(eval_shards: list[str], out_dir: str | os.PathLike[str], dinov2_model: Any, model_tag: str,
                 prompts: str | os.PathLike[str] | None = None, ref: str | os.PathLike[str] | None = None,
                 batch_size: int = 32) -> tuple[Path, Path]:
    """(reference npz, prompts JSONL): the given files, else reference stats of `eval_shards` (reused when they
    exist) and the captions of its keys, as `gpic-lab refstats` and `gpic-lab eval-prompts` write them."""
    from gpic_lab.evaluation import eval_prompts, refstats

    out = Path(out_dir)
    if not ref:
        ref = refstats.build_refstats(eval_shards, dinov2_model, out / "ref", split="baseline-eval",
                                      model_tag=model_tag, batch_size=batch_size, reuse=True)["path"]
    if not prompts:
        prompts = out / "eval_prompts.jsonl"
        eval_prompts.write_eval_prompts(eval_shards, ref, prompts)
    return Path(ref), Path(prompts)


def evaluate_cfgs(samples_dir: str | os.PathLike[str], cfgs: list[float], ref: str | os.PathLike[str], model: Any,
                  batch_size: int = 32, seed: int = 0) -> dict[float, dict[str, Any]]:
    """`gpic_lab.evaluation.evaluate.evaluate` of each CFG subdirectory written by `generate` (results.json saved beside it)."""
    from gpic_lab.baseline.generate import cfg_dirname
    from gpic_lab.evaluation.evaluate import evaluate
    from gpic_lab.fsio import write_json_atomic

    results = {}
    for c in cfgs:
        folder = Path(samples_dir) / cfg_dirname(c)
        results[c] = evaluate(folder, ref, model=model, batch_size=batch_size, seed=seed)
        write_json_atomic(folder.with_name(f"{folder.name}_results.json"), results[c])
    return results


def table3(results: dict[float, dict[str, Any]]) -> Any:
    """Our metrics per CFG beside GPIC's Table 3 row for the same CFG (NaN where GPIC has none)."""
    import pandas as pd

    rows = []
    for c, res in sorted(results.items()):
        row: dict[str, Any] = {"cfg": c, "n_samples": res.get("n_samples")}
        for m in METRICS:
            row[f"{m} (ours)"] = res.get(m)
            row[f"{m} (GPIC)"] = GPIC_TABLE3.get(c, {}).get(m, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_loss(log_csv: str | os.PathLike[str], title: str = "training loss") -> Any:
    """Logged loss per step (thin) and its running mean over ~5% of the rows (thick), log scale."""
    import matplotlib.pyplot as plt
    import pandas as pd

    log = pd.read_csv(log_csv)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(log["step"], log["loss"], lw=0.6, alpha=0.5, label="logged")
    window = max(1, len(log) // 20)
    ax.plot(log["step"], log["loss"].rolling(window, min_periods=1).mean(), lw=2, label=f"mean of {window} rows")
    ax.set(xlabel="step", ylabel="flow-matching velocity loss", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def sample_grid(samples_dir: str | os.PathLike[str], cfgs: list[float], prompts: str | os.PathLike[str],
                n: int = 4) -> Any:
    """The first `n` prompts (rows) sampled at each CFG (columns); the caption is printed above each row."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from gpic_lab.baseline.generate import cfg_dirname, read_prompts

    rows = read_prompts(prompts)[:n]
    fig, axes = plt.subplots(len(rows), len(cfgs), figsize=(2.4 * len(cfgs), 2.6 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, c in enumerate(cfgs):
            ax = axes[i][j]
            with Image.open(Path(samples_dir) / cfg_dirname(c) / f"{row['caption_type']}_{row['key']}.png") as im:
                ax.imshow(im.convert("RGB"))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"CFG {c:g}")
        axes[i][0].set_ylabel(row["caption"][:38] + ("…" if len(row["caption"]) > 38 else ""), fontsize=7)
    fig.tight_layout()
    return fig


def machine() -> str:
    """The device a measurement ran on, in words (GPU name, else CPU count and model)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPUs ({cpu})"


def throughput(log_csv: str | os.PathLike[str]) -> dict[str, float]:
    """Median step time, images/s and GPU-busy share of a run's log, without its first row (start-up)."""
    import pandas as pd

    log = pd.read_csv(log_csv)
    steady = log.iloc[1:] if len(log) > 1 else log
    return {"step_s": float(steady["step_s"].median()), "images_per_s": float(steady["images_per_s"].median()),
            "gpu_busy": float(steady["gpu_busy"].median()), "logged_rows": len(log)}


def cost_table(config: str, measured: dict[str, float], device: str, gpus: int = 8,
               date: str | None = None) -> Any:
    """Measured rate -> projected hours for one epoch of GPIC-Full (100M images) on `gpus` devices, beside GPIC's
    own 40 h on 8 H100s and the FLOPs side of both (model FLOPs utilisation at an H100's dense bf16 peak)."""
    import pandas as pd

    from gpic_lab.baseline.config import (
        epoch_hours,
        get_config,
        gpic_images_per_s_per_gpu,
        train_flops_per_image,
    )

    gpic_rate = gpic_images_per_s_per_gpu()
    big = train_flops_per_image(get_config("gpic-1.1b"))
    rows = [{"source": f"measured ({date or time.strftime('%Y-%m-%d')})", "config": config, "device": device,
             "step_s": measured["step_s"], "images_per_s_per_device": measured["images_per_s"],
             f"hours_1_epoch_full_{gpus}_devices": epoch_hours(measured["images_per_s"], gpus),
             "train_tflop_per_image": train_flops_per_image(get_config(config)) / 1e12},
            {"source": "GPIC paper (§4: ~40 h, 8xH100)", "config": "gpic-1.1b", "device": "H100",
             "step_s": 256 / (gpic_rate * 8), "images_per_s_per_device": gpic_rate,
             f"hours_1_epoch_full_{gpus}_devices": epoch_hours(gpic_rate, gpus), "train_tflop_per_image": big / 1e12,
             "implied_mfu_h100": gpic_rate * big / H100_BF16_DENSE}]
    return pd.DataFrame(rows)


def run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """run.json and summary.json of a training run, merged."""
    run = Path(run_dir)
    info = json.loads((run / "run.json").read_text())
    if (run / "summary.json").exists():
        info["summary"] = json.loads((run / "summary.json").read_text())
    return info
