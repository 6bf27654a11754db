"""Sampling the baseline for GPIC's evaluation: prompts JSONL -> DIR/cfg_<w>/{caption_type}_{key}.png (256x256 RGB).

The prompts are what `gpic-lab eval-prompts` writes ({"key", "caption", "caption_type"} per line). Each prompt's
noise is seeded by (seed, key), the same for every CFG value (OUR ASSUMPTION), so an image does not depend on
the batch it was drawn in or on how the prompt list was split over GPUs (`shard_range` "A:B" or rank/world, a
contiguous range each). Existing valid PNGs are skipped, files are written atomically: a killed run resumes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

log = logging.getLogger("gpic_lab.baseline")


def read_prompts(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of an eval-prompts JSONL; UsageError naming the line for malformed rows or duplicate keys."""
    from gpic_lab.shards.schema import CAPTION_TYPES

    rows, seen = [], set()
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read prompts ({exc.strerror or exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key, caption, ctype = str(row["key"]), str(row["caption"]), str(row["caption_type"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}:{n}: not a prompt row with key, caption, caption_type ({exc})") from None
        if ctype not in CAPTION_TYPES or not key or "/" in key:
            raise UsageError(f"{path}:{n}: bad caption_type {ctype!r} or key {key!r}")
        if key in seen:
            raise UsageError(f"{path}:{n}: duplicate key {key}")
        seen.add(key)
        rows.append({"key": key, "caption": caption, "caption_type": ctype})
    return rows


def parse_cfgs(text: str) -> list[float]:
    """'1.75,4.0,6.25' -> [1.75, 4.0, 6.25] (each >= 0, no duplicates)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--cfg {text!r}: expected comma-separated numbers") from None
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise UsageError(f"--cfg {text!r}: give distinct guidance scales >= 0")
    return values


def cfg_dirname(cfg: float) -> str:
    """The subdirectory of one guidance scale: cfg_1.75, cfg_4, cfg_6.25."""
    return f"cfg_{cfg:g}"


def prompt_range(n: int, shard_range: str | None = None, rank: int = 0, world: int = 1) -> tuple[int, int]:
    """[A, B) of the prompt list for this process: an explicit "A:B", else rank's contiguous share of `world`."""
    if shard_range:
        try:
            a_text, b_text = shard_range.split(":")
            a, b = int(a_text or 0), int(b_text) if b_text else n
        except ValueError:
            raise UsageError(f"--shard-range {shard_range!r}: expected A:B") from None
        if not 0 <= a <= b:
            raise UsageError(f"--shard-range {shard_range!r}: need 0 <= A <= B")
        return min(a, n), min(b, n)
    if not 0 <= rank < world:
        raise UsageError(f"--rank {rank} is not in [0, {world})")
    return n * rank // world, n * (rank + 1) // world


def valid_png(path: Path, size: int = 256) -> bool:
    """An existing size x size RGB PNG (header check; files are only ever written whole)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.format == "PNG" and im.mode == "RGB" and im.size == (size, size)
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def load_sampler(ckpt: str | os.PathLike[str], weights: str = "ema", device: Any = None) -> tuple[Any, Any, dict]:
    """(model in eval mode, its ModelConfig, checkpoint info) from a run directory or checkpoint file."""
    import torch

    from gpic_lab.baseline import checkpoint
    from gpic_lab.baseline.config import from_dict
    from gpic_lab.baseline.model import build_model

    if weights not in ("ema", "live"):
        raise UsageError(f"--weights must be ema or live, not {weights!r}")
    path = checkpoint.find(ckpt)
    state = checkpoint.load(path)
    cfg = from_dict(state["config"])
    model = build_model(cfg, device or ("cuda" if torch.cuda.is_available() else "cpu"), seed=None)
    model.load_state_dict(state["model"])
    if weights == "ema":
        if not state.get("ema"):
            raise UsageError(f"{path}: has no EMA weights (use --weights live)")
        model.load_state_dict(state["ema"]["shadow"], strict=False)
    info = {"checkpoint": str(path), "step": state["step"], "images_seen": state["images_seen"], "weights": weights,
            "settings": state["settings"]}
    return model.eval().requires_grad_(False), cfg, info


def _png(image_chw: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image_chw.permute(1, 2, 0).numpy()).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _todo(rows: list[dict[str, str]], out: Path, cfgs: list[float], size: int) -> list[tuple[dict, list[float]]]:
    todo = []
    for row in rows:
        name = f"{row['caption_type']}_{row['key']}.png"
        missing = [c for c in cfgs if not valid_png(out / cfg_dirname(c) / name, size)]
        if missing:
            todo.append((row, missing))
    return todo


def generate(ckpt: str | os.PathLike[str], prompts: str | os.PathLike[str], cfgs: list[float], out: str | os.PathLike[str],
             steps: int = 50, batch: int = 32, seed: int = 0, shard_range: str | None = None, rank: int = 0,
             world: int = 1, weights: str = "ema", device: Any = None, text_encoder: str | None = None,
             model_cache: str | None = None, bf16: bool = True, limit: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Sample every prompt of this process's range at every CFG value; returns counts and timing."""
    import torch

    from gpic_lab.baseline import flow
    from gpic_lab.baseline.text_encoder import load_text_encoder
    from gpic_lab.fsio import write_bytes_atomic, write_json_atomic

    if steps < 1 or batch < 1:
        raise UsageError("--steps and --batch must be >= 1")
    rows = read_prompts(prompts)[:limit]
    a, b = prompt_range(len(rows), shard_range, rank, world)
    model, cfg, info = load_sampler(ckpt, weights, device)
    dev = next(model.parameters()).device
    out_dir = Path(out)
    todo = _todo(rows[a:b], out_dir, cfgs, cfg.image_size)
    summary = {"range": [a, b], "prompts": b - a, "cfgs": cfgs, "steps": steps, "seed": seed, **info,
               "skipped_existing": (b - a) * len(cfgs) - sum(len(m) for _, m in todo), "written": 0}
    write_json_atomic(out_dir / f"generate_{a:08d}-{b:08d}.json", {k: v for k, v in summary.items() if k != "written"})
    if not todo:
        return {**summary, "seconds": 0.0}
    encoder = load_text_encoder(text_encoder or info["settings"].get("text_encoder") or cfg.text_encoder, device=dev,
                                max_length=cfg.text_len, cache=model_cache)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and dev.type == "cuda" else None
    uncond = encoder([""])
    shape = (3, cfg.image_size, cfg.image_size)
    started = time.perf_counter()
    bar = _bar(len(todo), progress)
    with ThreadPoolExecutor(4) as pool:
        writes = []
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            cond = encoder([r["caption"] for r, _ in chunk])
            noise = torch.stack([flow.keyed_normal(flow.key_seed(seed, "sample", r["key"]), shape, dev) for r, _ in chunk])
            for c in cfgs:
                idx = [i for i, (_, missing) in enumerate(chunk) if c in missing]
                if not idx:
                    continue
                sel = torch.tensor(idx, device=dev)
                images = flow.to_uint8(flow.euler_sample(model, noise[sel], cond[sel], uncond, c, steps, cfg.t_eps,
                                                         autocast)).cpu()
                for j, i in enumerate(idx):
                    row = chunk[i][0]
                    path = out_dir / cfg_dirname(c) / f"{row['caption_type']}_{row['key']}.png"
                    writes.append(pool.submit(lambda p=path, im=images[j]: write_bytes_atomic(p, _png(im))))
            for f in writes:
                f.result()
            summary["written"] += len(writes)
            writes = []
            bar.update(len(chunk)) if bar else None
    if bar:
        bar.close()
    seconds = time.perf_counter() - started
    log.info("generate: %d images in %.1f s (%.2f images/s)", summary["written"], seconds, summary["written"] / seconds)
    return {**summary, "seconds": round(seconds, 2), "images_per_s": round(summary["written"] / seconds, 3)}


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="prompt", desc="generate", dynamic_ncols=True)
