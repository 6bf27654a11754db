"""LLM-as-judge caption scoring on GPIC's five axes: overall summary, counting, spatial relations, attribute
binding and OCR, each 0 (wrong), 1 (partly right), 2 (right) or N/A (the image has nothing to judge on that axis).

The judge is any Qwen3-VL checkpoint `gpic_lab.models.qwen_vl.load_qwen3vl` loads (a larger one is better); it sees the
image, the candidate caption and, when the user has one, a reference caption. Its answer is parsed robustly
(`parse_judgement`): code fences, prose around the JSON, single quotes, trailing commas, unquoted N/A, key
aliases ("overall", "attributes", "text") and "key: value" lines are all accepted; anything else is counted as a
parse failure, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpic_lab.errors import UsageError

AXES = ("summary", "counting", "spatial", "attribute_binding", "ocr")
ALIASES = {"overall": "summary", "overall_summary": "summary", "summary": "summary", "count": "counting",
           "counting": "counting", "spatial": "spatial", "spatial_relations": "spatial", "position": "spatial",
           "attribute_binding": "attribute_binding", "attributes": "attribute_binding", "binding": "attribute_binding",
           "attribute": "attribute_binding", "ocr": "ocr", "text": "ocr", "text_ocr": "ocr"}
_NA = {"n/a", "na", "none", "null", "not applicable", "-"}
PROMPT = """You are grading an image caption. Score it on five axes, each 0 (wrong), 1 (partly right), 2 (right), \
or "N/A" when the image gives nothing to judge on that axis:
summary (overall description), counting (numbers of objects), spatial (positions and relations), \
attribute_binding (colours/sizes attached to the right objects), ocr (visible text transcribed correctly).
{reference}Caption: {caption}
Answer with JSON only, e.g. {{"summary": 2, "counting": 1, "spatial": 2, "attribute_binding": 2, "ocr": "N/A"}}"""


@dataclass
class Judgement:
    """Parsed scores (None = N/A), the axes missing from the answer, and whether parsing succeeded."""

    scores: dict[str, int | None] = field(default_factory=dict)
    missing: tuple[str, ...] = AXES
    ok: bool = False
    error: str = ""


def build_prompt(caption: str, reference: str | None = None) -> str:
    """The judge prompt for one caption (with the reference caption when given)."""
    ref = f"Reference caption (correct): {reference}\n" if reference else ""
    return PROMPT.format(reference=ref, caption=caption)


def _axis(name: str) -> str | None:
    return ALIASES.get(re.sub(r"[\s\-]+", "_", name.strip().lower()))


def _value(raw: Any) -> tuple[bool, int | None]:
    """(valid, score): 0/1/2 (ints, floats, digit strings, '2/2'), N/A spellings -> None."""
    if raw is None:
        return True, None
    if isinstance(raw, bool):
        return False, None
    text = str(raw).strip().lower().strip("\"'")
    if text in _NA:
        return True, None
    m = re.fullmatch(r"([0-2])(?:\.0+)?(?:\s*/\s*2)?", text)
    return (True, int(m.group(1))) if m else (False, None)


def _json_object(text: str) -> dict[str, Any] | None:
    body = re.sub(r"```(?:json)?", "", text)
    start = body.find("{")
    end = body.rfind("}")
    if start < 0 or end <= start:
        return None
    blob = body[start:end + 1]
    for candidate in (blob, _repair(blob)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _repair(blob: str) -> str:
    blob = blob.replace("'", '"')
    blob = re.sub(r",\s*([}\]])", r"\1", blob)                                  # trailing commas
    blob = re.sub(r'([{,]\s*)([A-Za-z_][\w \-]*?)\s*:', r'\1"\2":', blob)       # unquoted keys
    return re.sub(r':\s*(N/?A|None|null|NA)\s*([,}])', r': null\2', blob, flags=re.I)


def parse_judgement(text: str) -> Judgement:
    """Parse a judge answer into five axis scores; see the module docstring for what is accepted."""
    obj = _json_object(text)
    pairs: list[tuple[str, Any]] = list(obj.items()) if obj is not None else re.findall(
        r"([A-Za-z][A-Za-z _\-]*?)\s*[:=]\s*(\"?N/?A\"?|[0-2](?:\s*/\s*2)?|null|none)\b", text, flags=re.I)
    scores: dict[str, int | None] = {}
    bad: list[str] = []
    for name, raw in pairs:
        axis = _axis(str(name))
        if axis is None or axis in scores:
            continue
        valid, value = _value(raw)
        if valid:
            scores[axis] = value
        else:
            bad.append(f"{axis}={raw!r}")
    missing = tuple(a for a in AXES if a not in scores)
    if not scores:
        return Judgement(error="no axis scores found")
    error = "; ".join(([f"invalid {', '.join(bad)}"] if bad else []) + ([f"missing {', '.join(missing)}"] if missing else []))
    return Judgement(scores, missing, ok=not missing and not bad, error=error)


def judge_captions(model: Any, processor: Any, images: Sequence[Any], captions: Sequence[str],
                   references: Sequence[str | None] | None = None, batch_size: int = 4,
                   max_new_tokens: int = 96) -> Any:
    """Ask the judge about every caption; one row per caption: axis scores, ok, error, raw answer."""
    import pandas as pd

    from gpic_lab.models.qwen_vl import generate

    refs = list(references) if references is not None else [None] * len(captions)
    if not len(images) == len(captions) == len(refs):
        raise UsageError(f"judge: {len(images)} images, {len(captions)} captions, {len(refs)} references")
    rows = []
    for i in range(0, len(captions), batch_size):
        prompts = [build_prompt(c, r) for c, r in zip(captions[i:i + batch_size], refs[i:i + batch_size], strict=True)]
        answers = generate(model, processor, list(images[i:i + batch_size]), prompts, max_new_tokens=max_new_tokens)
        for answer in answers:
            j = parse_judgement(str(answer))
            rows.append({**{a: j.scores.get(a) for a in AXES}, "ok": j.ok, "error": j.error, "raw": str(answer)})
    return pd.DataFrame(rows, columns=[*AXES, "ok", "error", "raw"])


def summarize(scores: Any) -> dict[str, Any]:
    """Mean score per axis over parsed answers (N/A excluded), N/A counts and the parse-failure count."""
    ok = scores["ok"].astype(bool)
    good = scores.loc[ok]
    return {"judged": int(len(scores)), "parse_failures": int((~ok).sum()),
            "mean": {a: (float(good[a].dropna().mean()) if good[a].notna().any() else None) for a in AXES},
            "n_a": {a: int(good[a].isna().sum()) for a in AXES}}
