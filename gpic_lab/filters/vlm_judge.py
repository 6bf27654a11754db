"""VLM judge (stage ``vlm-judge``): Qwen3-VL-4B-Instruct answers our quality and conservative safety prompts.

GPIC removed ~0.3% of images with a Qwen3-VL-4B quality filter and ~0.35% with a conservative safety filter; the
prompts were not published, so ``gpic_lab/prompts/judge_quality.txt`` and ``judge_safety.txt`` are ours (versioned;
the versions are recorded in every decision). The model loads through ``gpic_lab.models.qwen_vl`` from a local directory or
the Hugging Face cache (bf16 on CUDA); batches of images get greedy answers which are parsed as structured yes/no
lines:

    quality:  BLANK / BLURRY / DARK / BRIGHT / LOW_CONTENT: yes|no  -> reasons blank, blur, underexposed,
                                                                      overexposed, low-content
    safety:   UNSAFE: yes|no                                        -> reason unsafe

With ``one_pass=True`` both are asked in one generation (``judge_combined.txt``: the six lines together), so each
image is preprocessed and encoded once. Reason priority: ``undecodable``, ``unsafe``, the first quality "yes", then ``judge-unparseable`` when an answer
could not be parsed (conservative: such samples are dropped unless ``unparseable="keep"``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.errors import GpicError, UsageError

QUALITY_FIELDS = {"BLANK": "blank", "BLURRY": "blur", "DARK": "underexposed", "BRIGHT": "overexposed",
                  "LOW_CONTENT": "low-content"}
UNPARSEABLE = "judge-unparseable"
DEFAULT_MODEL = "Qwen/Qwen3-VL-4B-Instruct"
DEFAULTS: dict[str, Any] = {"model": DEFAULT_MODEL, "device": None, "dtype": None, "batch_size": 8,
                            "checks": ["quality", "safety"], "min_pixels": None, "max_pixels": 448 * 448,
                            "max_new_tokens_quality": 40, "max_new_tokens_safety": 8, "unparseable": "drop",
                            "one_pass": False}
_LINE = re.compile(r"^[\W\d]*([A-Z_ ]+?)\W*[:=\-]\s*\**\s*(yes|no)\b", re.IGNORECASE | re.MULTILINE)
_MODELS: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def load_prompt(check: str) -> tuple[str, str]:
    """(prompt text, version) from gpic_lab/prompts/judge_<check>.txt ('#' lines are comments)."""
    try:
        raw = resources.files("gpic_lab.filters").joinpath("prompts", f"judge_{check}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"vlm-judge: no prompt for check {check!r} (known: quality, safety, combined)") from None
    lines = [ln for ln in raw.splitlines() if not ln.startswith("#")]
    version = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("version:")), None)
    if not version:
        raise GpicError(f"prompts/judge_{check}.txt: missing 'version:' line")
    return "\n".join(ln for ln in lines if not ln.startswith("version:")).strip(), version


@dataclass(frozen=True)
class Verdict:
    """A parsed answer: the reasons it flags (empty when clean) and whether it could be parsed at all."""

    parsed: bool
    flags: tuple[str, ...] = field(default_factory=tuple)


def _answers(text: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for name, value in _LINE.findall(text or ""):
        key = re.sub(r"\s+", "_", name.strip().upper())
        out.setdefault(key, value.lower() == "yes")
    return out


def parse_quality(text: str) -> Verdict:
    """Parse the five quality lines. Any "yes" flags its reason (even when other lines are missing); a clean
    verdict needs all five answered "no"."""
    answers = _answers(text)
    flags = tuple(reason for name, reason in QUALITY_FIELDS.items() if answers.get(name))
    return Verdict(bool(flags) or all(name in answers for name in QUALITY_FIELDS), flags)


def parse_safety(text: str) -> Verdict:
    """Parse ``UNSAFE: yes|no`` (a bare leading yes/no is accepted too)."""
    answers = _answers(text)
    if "UNSAFE" in answers:
        return Verdict(True, ("unsafe",) if answers["UNSAFE"] else ())
    bare = re.match(r"^\W*(yes|no)\b", text or "", re.IGNORECASE)
    if bare:
        return Verdict(True, ("unsafe",) if bare.group(1).lower() == "yes" else ())
    return Verdict(False)


PARSERS = {"quality": parse_quality, "safety": parse_safety}


def params_of(params: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS overridden by ``params``; unknown keys and bad values are UsageErrors."""
    p = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(p) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"vlm-judge: unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    checks = p["checks"].split(",") if isinstance(p["checks"], str) else list(p["checks"])
    bad = [c for c in checks if c not in PARSERS]
    if bad or not checks:
        raise UsageError(f"vlm-judge: checks must be a non-empty subset of quality,safety (got {p['checks']!r})")
    if not isinstance(p["one_pass"], bool):
        raise UsageError(f"vlm-judge: one_pass must be true or false (got {p['one_pass']!r})")
    if p["unparseable"] not in ("drop", "keep"):
        raise UsageError(f"vlm-judge: unparseable must be 'drop' or 'keep' (got {p['unparseable']!r})")
    try:
        p["batch_size"] = int(p["batch_size"])
    except (TypeError, ValueError):
        raise UsageError(f"vlm-judge: batch_size {p['batch_size']!r} is not an integer") from None
    if p["batch_size"] < 1:
        raise UsageError("vlm-judge: batch_size must be >= 1")
    return {**p, "checks": checks}


def model_for(p: dict[str, Any]) -> tuple[Any, Any]:
    """The (model, processor) for these params, loaded once per process."""
    from gpic_lab.models import qwen_vl

    key = (str(p["model"]), p["device"], str(p["dtype"]), p["min_pixels"], p["max_pixels"])
    if key not in _MODELS:
        _MODELS[key] = qwen_vl.load_qwen3vl(p["model"], device=p["device"], dtype=p["dtype"],
                                         min_pixels=p["min_pixels"], max_pixels=p["max_pixels"])
    return _MODELS[key]


def open_rgb(data: bytes | None, max_side: int = 1024) -> Any:
    """Decode to RGB (JPEGs at a reduced DCT scale when far larger than ``max_side``); raises on bad data."""
    from PIL import Image

    from gpic_lab.core.images import to_8bit

    im = Image.open(io.BytesIO(data or b""))
    w, h = im.size
    if im.format == "JPEG" and max(w, h) > 2 * max_side:
        im.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
    return to_8bit(im).convert("RGB")


def one_pass(p: dict[str, Any]) -> bool:
    """True when quality and safety are asked in one generation (``one_pass`` and both checks requested)."""
    return bool(p["one_pass"]) and set(p["checks"]) == {"quality", "safety"}


def judge_images(model: Any, processor: Any, images: list[Any], p: dict[str, Any]) -> list[dict[str, str]]:
    """Raw answers per image: {check: text} for every check in ``p["checks"]`` (one batched generate per check, or
    one for both with ``one_pass``: prompts/judge_combined.txt, both checks parse the same answer)."""
    from gpic_lab.models import qwen_vl

    answers: list[dict[str, str]] = [{} for _ in images]
    if one_pass(p):  # one generation answers both: the image is preprocessed and encoded once
        prompt, _version = load_prompt("combined")
        budget = int(p["max_new_tokens_quality"]) + int(p["max_new_tokens_safety"])
        texts = qwen_vl.generate(model, processor, images, [prompt] * len(images), max_new_tokens=budget)
        return [{"quality": str(t), "safety": str(t)} for t in texts]
    for check in p["checks"]:
        prompt, _version = load_prompt(check)
        texts = qwen_vl.generate(model, processor, images, [prompt] * len(images),
                              max_new_tokens=int(p[f"max_new_tokens_{check}"]))
        for row, text in zip(answers, texts, strict=True):
            row[check] = str(text)
    return answers


def decide(answers: dict[str, str], unparseable: str = "drop") -> tuple[str | None, dict[str, float]]:
    """(reason or None, scores) from one image's raw answers (see the module docstring for the priority)."""
    verdicts = {c: PARSERS[c](t) for c, t in answers.items()}
    scores = {f"judge_{c}_flags": float(len(v.flags)) if v.parsed else float("nan") for c, v in verdicts.items()}
    if "safety" in verdicts and verdicts["safety"].flags:
        return "unsafe", scores
    if "quality" in verdicts and verdicts["quality"].flags:
        return verdicts["quality"].flags[0], scores
    if unparseable == "drop" and not all(v.parsed for v in verdicts.values()):
        return UNPARSEABLE, scores
    return None, scores


@declare(ParamSpec("model", "str", DEFAULTS["model"], "local model dir or hub id in the HF cache"),
         ParamSpec("device", "str", None, "torch device (default: cuda when present, else cpu)", nullable=True),
         ParamSpec("dtype", "choice", None, "weights dtype (default: bfloat16 on CUDA, float32 on CPU)",
                   choices=("bfloat16", "float16", "float32"), nullable=True),
         ParamSpec("batch_size", "int", DEFAULTS["batch_size"], "images per generate call", low=1, high=4096),
         ParamSpec("checks", "choices", DEFAULTS["checks"], "which judgements to ask", choices=tuple(PARSERS)),
         ParamSpec("min_pixels", "int", None, "processor min_pixels (default: the processor's)", low=1,
                   nullable=True),
         ParamSpec("max_pixels", "int", DEFAULTS["max_pixels"], "processor max_pixels", low=1),
         ParamSpec("max_new_tokens_quality", "int", DEFAULTS["max_new_tokens_quality"], "answer length, quality",
                   low=1, high=4096),
         ParamSpec("max_new_tokens_safety", "int", DEFAULTS["max_new_tokens_safety"], "answer length, safety", low=1,
                   high=4096),
         ParamSpec("unparseable", "choice", DEFAULTS["unparseable"], "what an answer that does not parse does",
                   choices=("drop", "keep")),
         ParamSpec("one_pass", "bool", DEFAULTS["one_pass"], "ask both checks in one generation"))
def judge_stage(samples: list[Any], params: dict[str, Any] | None = None) -> list[Any]:
    """Stage ``vlm-judge``: one Decision per sample (reasons above; raw answers and prompt versions as extras).

    params: model (local dir or hub id in the HF cache; default Qwen/Qwen3-VL-4B-Instruct), device, dtype,
    batch_size (8), checks (["quality", "safety"]), min_pixels / max_pixels (448*448), max_new_tokens_quality (40),
    max_new_tokens_safety (8), unparseable ("drop" | "keep"), one_pass (False: True asks both checks in one
    generation with prompts/judge_combined.txt, encoding each image once).
    """
    from gpic_lab.engine.records import Decision
    from gpic_lab.models import qwen_vl

    p = params_of(params)
    model, processor = model_for(p)
    versions = load_prompt("combined")[1] if one_pass(p) else "+".join(load_prompt(c)[1] for c in p["checks"])
    model_name = Path(str(p["model"])).name + (" (TINY RANDOM: placeholder answers)" if qwen_vl.is_tiny(p["model"])
                                               else "")
    out: list[Any] = []
    for start in range(0, len(samples), p["batch_size"]):
        chunk = samples[start:start + p["batch_size"]]
        images: dict[str, Any] = {}
        for s in chunk:
            try:
                images[s.key] = open_rgb(s.image)
            except Exception:  # noqa: BLE001 - any undecodable image gets its own reason
                continue
        raw = dict(zip(images, judge_images(model, processor, list(images.values()), p), strict=True)) \
            if images else {}
        for s in chunk:
            extra = {"judge_model": model_name, "judge_prompts": versions}
            if s.key not in raw:
                out.append(Decision(s.key, False, "undecodable", extra=extra))
                continue
            reason, scores = decide(raw[s.key], p["unparseable"])
            extra.update({f"judge_raw_{c}": t[:300] for c, t in raw[s.key].items()} if not one_pass(p)
                         else {"judge_raw_combined": raw[s.key]["quality"][:300]})
            out.append(Decision(s.key, reason is None, reason, scores=scores, extra=extra))
    return out
