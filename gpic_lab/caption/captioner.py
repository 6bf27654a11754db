"""Captioning at GPIC's four levels with Qwen3-VL: caption-type assignment, prompts, backends, resumable runs.

Outputs, per input shard: ``OUT/<shard-stem>.captions.parquet`` (one row per key and level) then the completion
marker ``OUT/done/<shard-stem>.done``. A rerun skips shards with a marker; a shard interrupted half-way is
redone from its start (its parquet is written atomically only once complete), so a resumed run has no duplicates
and no gaps.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from gpic_lab.caption.feed import count_samples, decoded, jobs_for, prepare_image, read_shard
from gpic_lab.caption.levels import LEVELS, MAX_NEW_TOKENS, check_levels, load_prompt
from gpic_lab.errors import GpicError, UsageError

__all__ = ["jobs_for", "prepare_image"]  # re-exported: part of this module's API

COLUMNS = ("key", "shard", "caption_type", "caption", "prompt_version", "model", "backend", "sampling",
           "max_new_tokens", "n_tokens", "truncated", "model_warning")


class Captioner(Protocol):
    """What a backend provides: caption a batch of PIL images, one level each."""

    name: str
    model: str
    model_warning: str
    sampling: dict[str, Any]

    def caption(self, images: list[Any], levels: list[str], prompts: list[str] | None = None) -> list[dict[str, Any]]:
        """One {text, n_tokens, truncated, max_new_tokens} per image; ``prompts`` replace the levels' own prompts
        (``caption --redo``: the level's prompt plus a correction hint)."""
        ...


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


class TransformersCaptioner:
    """Qwen3-VL through transformers (bf16 + SDPA/flash on CUDA; the real code path on CPU with the tiny model)."""

    name = "transformers"

    def __init__(self, model_path: str | os.PathLike[str], device: str | None = None, dtype: Any = None,
                 min_pixels: int | None = None, max_pixels: int | None = None,
                 max_new_tokens: dict[str, int] | None = None, fixed_tokens: bool = False, **sampling: Any) -> None:
        """``model_path="random-4b"``: the 4B architecture with random weights (throughput only); ``fixed_tokens``:
        every caption is generated to exactly its budget (EOS/pad suppressed), for throughput at a set length."""
        from gpic_lab.models import qwen_vl

        if str(model_path) == "random-4b":
            self.model_obj, self.processor = qwen_vl.random_qwen3vl_4b(
                device, dtype, min_pixels, max_pixels, corpus=[load_prompt(lv)[0] for lv in LEVELS])
            self.model_warning = qwen_vl.RANDOM_4B_WARNING
        else:
            self.model_obj, self.processor = qwen_vl.load_qwen3vl(model_path, device, dtype, min_pixels, max_pixels)
            self.model_warning = qwen_vl.TINY_WARNING if qwen_vl.is_tiny(model_path) else ""
        self.model = str(model_path)
        self.fixed_tokens = fixed_tokens
        self.prep_workers = min(8, os.cpu_count() or 1) if str(self.model_obj.device).startswith("cuda") else 1
        self.max_new_tokens = {**MAX_NEW_TOKENS, **(max_new_tokens or {})}
        self.sampling = {"do_sample": False, **sampling}  # OUR ASSUMPTION: greedy (GPIC gives no decoding settings)
        self.prompts = {lv: load_prompt(lv)[0] for lv in LEVELS}

    def prepare(self, images: list[Any], levels: list[str], prompts: list[str] | None = None) -> Any:
        """CPU preprocessing of a batch (tokenize + image processor, chunked over threads)."""
        from gpic_lab.models import qwen_vl

        return qwen_vl.prepare_inputs(self.processor, images, prompts or [self.prompts[lv] for lv in levels],
                                   workers=self.prep_workers)

    def caption(self, images: list[Any], levels: list[str], prompts: list[str] | None = None) -> list[dict[str, Any]]:
        return self.caption_prepared(self.prepare(images, levels, prompts), levels)

    def caption_prepared(self, inputs: Any, levels: list[str]) -> list[dict[str, Any]]:
        """Generate for a batch from ``prepare`` (each level's own token budget enforced)."""
        from gpic_lab.models import qwen_vl

        budget = max(self.max_new_tokens[lv] for lv in levels)
        extra: dict[str, Any] = {}
        if self.fixed_tokens:
            extra = {"min_new_tokens": budget, "suppress_tokens": [self.model_obj.generation_config.pad_token_id]}
        out = qwen_vl.generate_from_inputs(self.model_obj, self.processor, inputs, max_new_tokens=budget,
                                        return_details=True, **self.sampling, **extra)
        for row, lv in zip(out, levels, strict=True):  # a batch shares one budget: enforce each level's own
            cap = self.max_new_tokens[lv]
            if row["n_tokens"] > cap:
                ids = self.processor.tokenizer(row["text"], add_special_tokens=False)["input_ids"][:cap]
                row.update(text=self.processor.tokenizer.decode(ids).strip(), n_tokens=cap, truncated=True)
            else:
                row["truncated"] = row["n_tokens"] >= cap
            row["max_new_tokens"] = cap
        return out


class VllmCaptioner:
    """Qwen3-VL through vLLM's offline engine (optional extra; CUDA only)."""

    name = "vllm"

    def __init__(self, model_path: str | os.PathLike[str], min_pixels: int | None = None, max_pixels: int | None = None,
                 max_new_tokens: dict[str, int] | None = None, **sampling: Any) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise UsageError("--backend vllm needs the optional vllm package (pip install vllm) and a CUDA GPU") from exc
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--backend vllm needs a CUDA GPU")
        from gpic_lab.models import qwen_vl

        mm = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        self.llm = vllm.LLM(model=str(qwen_vl.resolve_model_path(model_path)), limit_mm_per_prompt={"image": 1},
                            mm_processor_kwargs=mm or None, dtype="bfloat16")
        self.vllm = vllm
        self.model = str(model_path)
        self.model_warning = qwen_vl.TINY_WARNING if qwen_vl.is_tiny(model_path) else ""
        self.max_new_tokens = {**MAX_NEW_TOKENS, **(max_new_tokens or {})}
        self.sampling = {"temperature": 0.0, **{k: v for k, v in sampling.items() if k != "do_sample"}}
        tok = self.llm.get_tokenizer()
        self.texts = {lv: tok.apply_chat_template(qwen_messages(load_prompt(lv)[0]), tokenize=False,
                                                  add_generation_prompt=True) for lv in LEVELS}

    def caption(self, images: list[Any], levels: list[str], prompts: list[str] | None = None) -> list[dict[str, Any]]:
        texts = [self.texts[lv] for lv in levels] if prompts is None else [
            self.llm.get_tokenizer().apply_chat_template(qwen_messages(p), tokenize=False, add_generation_prompt=True)
            for p in prompts]
        requests = [{"prompt": t, "multi_modal_data": {"image": im}} for im, t in zip(images, texts, strict=True)]
        params = [self.vllm.SamplingParams(max_tokens=self.max_new_tokens[lv], **self.sampling) for lv in levels]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        return [{"text": o.outputs[0].text.strip(), "n_tokens": len(o.outputs[0].token_ids),
                 "truncated": o.outputs[0].finish_reason == "length", "max_new_tokens": self.max_new_tokens[lv]}
                for o, lv in zip(outs, levels, strict=True)]


def qwen_messages(prompt: str) -> list[dict[str, Any]]:
    from gpic_lab.models.qwen_vl import build_messages

    return build_messages(prompt)


def tiny_model_dir() -> Path:
    """The tiny random Qwen3-VL under the state dir (built on first use)."""
    from gpic_lab.models import qwen_vl
    from gpic_lab.paths import state_root

    path = state_root() / "models" / "qwen3vl-tiny"
    if not qwen_vl.is_tiny(path):
        import shutil
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".qwen3vl-tiny.", dir=path.parent))  # parallel workers: build apart
        qwen_vl.build_tiny_qwen3vl(tmp)
        try:
            os.rename(tmp, path)
        except OSError:  # another worker finished first (same seed, same model)
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def make_captioner(model: str, backend: str = "transformers", **kwargs: Any) -> Captioner:
    """A backend by name; ``model="tiny"`` uses (and builds) the tiny random model."""
    path = tiny_model_dir() if model == "tiny" else model
    if backend == "transformers":
        return TransformersCaptioner(path, **kwargs)
    if backend == "vllm":
        kwargs.pop("device", None)
        kwargs.pop("dtype", None)
        return VllmCaptioner(path, **kwargs)
    raise UsageError(f"unknown backend {backend!r} (transformers or vllm)")


def run_batches(captioner: Captioner, items: Sequence[tuple[Any, str, Any]], batch_size: int,
                on_done: Any = None, state: dict[str, int] | None = None,
                prompt_of: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Caption (sample, level, image) items in batches; halve the batch on CUDA OOM instead of crashing.

    A captioner with ``prepare``/``caption_prepared`` gets the next batch preprocessed in a background thread
    while the current one generates. ``state["batch"]`` carries the (possibly halved) batch size onwards.
    ``prompt_of``: key -> prompt replacing the level's own (``caption --redo``).
    """
    def prompts(chunk: Sequence[tuple[Any, str, Any]]) -> list[str] | None:
        return [prompt_of[c[0].key] for c in chunk] if prompt_of is not None else None

    state = state if state is not None else {}
    results: list[dict[str, Any]] = []
    i, size = 0, max(1, state.get("batch", batch_size))
    prepare = getattr(captioner, "prepare", None)
    pool = ThreadPoolExecutor(1) if prepare else None
    ahead: tuple[int, int, Any] | None = None  # (start, size, future of prepared inputs)

    def submit(start: int, n: int) -> tuple[int, int, Any] | None:
        nxt = items[start:start + n]
        return (start, n, pool.submit(prepare, [c[2] for c in nxt], [c[1] for c in nxt], prompts(nxt))
                ) if nxt and pool else None

    try:
        while i < len(items):
            chunk = items[i:i + size]
            levels = [c[1] for c in chunk]
            try:
                if prepare:
                    ready = ahead[2] if ahead and ahead[:2] == (i, size) else pool.submit(
                        prepare, [c[2] for c in chunk], levels, prompts(chunk))
                    ahead = submit(i + len(chunk), size)
                    out = captioner.caption_prepared(ready.result(), levels)
                else:
                    out = captioner.caption([c[2] for c in chunk], levels, *([prompts(chunk)] if prompt_of else []))
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                if size == 1:
                    raise GpicError(f"out of memory with batch size 1 on {chunk[0][0].key}: lower --max-pixels") from exc
                _empty_cache()
                size //= 2
                state["batch"] = size
                print(f"caption: out of memory, batch size -> {size}", file=sys.stderr)
                continue
            results += out
            i += len(chunk)
            if on_done:
                on_done(len(chunk))
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _empty_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def caption_shards(paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], captioner: Captioner,
                   levels: str = "auto", batch_size: int = 8, seed: int = 0, workers: int = 2,
                   max_pixels: int | None = None, progress: bool | str = True, force: bool = False,
                   on_corrupt: str = "raise") -> dict[str, Any]:
    """Caption every shard; skip shards whose completion marker exists (unless force). Returns run stats.

    ``on_corrupt="skip"`` captions past unreadable samples, counted by code in ``stats["skipped_samples"]``.
    """
    from collections import Counter

    from gpic_lab.shards.reader import list_shards

    check_levels(levels)  # before the run config is recorded
    shards = list_shards(paths)
    out = Path(out_dir)
    check_run_config(out, captioner, levels, seed, force)
    todo = [s for s in shards if force or not (out / "done" / f"{Path(s).stem}.done").is_file()]
    total = count_samples(todo) * (len(LEVELS) if levels == "all" else 1)
    bar = _bar(total, progress)
    skipped: Counter[str] = Counter()
    stats: dict[str, Any] = {"shards": len(shards), "skipped": len(shards) - len(todo), "captions": 0, "tokens": 0,
                             "seconds": 0.0, "skipped_samples": skipped}
    t0 = time.perf_counter()
    try:
        for shard in todo:
            rows = caption_one_shard(shard, captioner, levels, batch_size, seed, workers, max_pixels, bar.update,
                                     on_corrupt, skipped)
            write_rows(out / f"{Path(shard).stem}.captions.parquet", rows)
            from gpic_lab.fsio import write_bytes_atomic

            write_bytes_atomic(out / "done" / f"{Path(shard).stem}.done", f"{len(rows)}\n".encode())
            stats["captions"] += len(rows)
            stats["tokens"] += sum(r["n_tokens"] for r in rows)
            from gpic_lab.progress import log

            log(__name__).info("caption: %s done (%d captions)", Path(shard).name, len(rows))
    finally:
        bar.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["skipped_samples"] = dict(sorted(skipped.items()))
    return stats


def check_run_config(out: Path, captioner: Captioner, levels: str, seed: int, force: bool) -> None:
    """Refuse to resume into ``out`` with another configuration (markers would skip shards captioned differently);
    record the configuration in ``out/caption_config.json``."""
    from gpic_lab.fsio import write_json_atomic

    config = {"levels": levels, "seed": seed, "model": captioner.model, "backend": captioner.name,
              "sampling": captioner.sampling, "prompts": {lv: load_prompt(lv)[1] for lv in LEVELS}}
    config = json.loads(json.dumps(config, sort_keys=True, default=str))  # compare as it is stored
    path = out / "caption_config.json"
    if path.is_file() and not force:
        old = json.loads(path.read_text())
        diff = [f"{k}: {old.get(k)!r} -> {config[k]!r}" for k in config if old.get(k) != config[k]]
        if diff:
            raise UsageError(f"{out}: holds captions made with another configuration ({'; '.join(diff)}); "
                             "use another --out, or --force to redo the shards")
    write_json_atomic(path, config)


def caption_one_shard(shard: str, captioner: Captioner, levels: str, batch_size: int, seed: int, workers: int,
                      max_pixels: int | None, on_done: Any = None, on_corrupt: str = "raise",
                      skipped: Any = None) -> list[dict[str, Any]]:
    """Caption rows of one shard (in key, level order)."""
    jobs = jobs_for(read_shard(shard, on_corrupt, skipped), levels, seed)
    items: list[tuple[Any, str, Any]] = []
    results: list[dict[str, Any]] = []
    window: list[tuple[Any, str, Any]] = []
    state: dict[str, int] = {}
    for item in decoded(jobs, max_pixels, workers, max(8, 2 * batch_size), on_corrupt, skipped):
        window.append(item)
        if len(window) >= 8 * batch_size:
            results += run_batches(captioner, window, batch_size, on_done, state)
            items += [(s, lv, None) for s, lv, _ in window]  # drop decoded images once captioned
            window = []
    results += run_batches(captioner, window, batch_size, on_done, state)
    items += [(s, lv, None) for s, lv, _ in window]
    version = {lv: load_prompt(lv)[1] for lv in LEVELS}
    sampling = json.dumps(captioner.sampling, sort_keys=True)
    rows = [{"key": s.key, "shard": Path(shard).name, "caption_type": lv, "caption": r["text"],
             "prompt_version": version[lv], "model": captioner.model, "backend": captioner.name,
             "sampling": sampling, "max_new_tokens": int(r["max_new_tokens"]), "n_tokens": int(r["n_tokens"]),
             "truncated": bool(r["truncated"]), "model_warning": captioner.model_warning}
            for (s, lv, _), r in zip(items, results, strict=True)]
    order = {lv: i for i, lv in enumerate(LEVELS)}
    return sorted(rows, key=lambda r: (r["key"], order[r["caption_type"]]))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    from gpic_lab.fsio import write_parquet_atomic

    write_parquet_atomic(path, pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in COLUMNS}))


def _bar(total: int, mode: bool | str) -> Any:
    from gpic_lab.progress import bar

    return bar(total, "caption", "img", mode)
