"""The caption second pass (`gpic-lab caption PATH... --out DIR --redo QC_DIR`): recaption what caption QC failed.

GPIC (paper §2.4): each caption gets a quality check, and "a second pass can enrich or correct problematic
captions". Here:
1. the keys that failed QC are read from ``QC_DIR/decisions.parquet`` (stage ``caption-qc``); ``not-visible-image``
   (``NOT VISIBLE.`` for an image that is indeed unusable) is not recaptioned: the image leaves the dataset;
2. each is recaptioned at its level with the level's own prompt plus a correction hint naming the failure (reason,
   detail and what to do instead), and with ``budget_factor`` × the level's token budget (default 2×, so a caption
   cut at the budget can end);
3. the new captions go to ``DIR/<shard>.redo.captions.parquet`` (they win over the first pass wherever captions are
   read: ``caption.store``), and QC runs again over the same shards with the same parameters plus the redo files;
4. the first-pass table is kept as ``QC_DIR/first_pass/`` and ``QC_DIR/decisions.parquet`` becomes the second pass,
   so ``pack ... QC_DIR`` drops only what still fails and takes the corrected captions from ``--captions DIR``;
   ``QC_DIR/redo_counts.csv`` holds the failures per reason before and after.

``QC_DIR`` may also be a review export (``gpic-lab review export``, stage ``review``): then the keys a reviewer
tagged for recaptioning (``review_action == "recaption"``) are recaptioned with the reviewer's note as the hint,
each new caption is checked against its level's rules (``caption.checks``), and the review table's second pass
keeps the keys whose new caption passes (``review_action`` ``recaptioned``); the others stay dropped.
OUR ASSUMPTIONS: GPIC does not describe its second pass; the hint wording, the 2× budget, one retry, and greedy
decoding as in the first pass are ours.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

NOT_REDONE = ("not-visible-image",)
ADVICE = {
    "empty": "write a caption",
    "bad-type": "write the caption for the requested level",
    "not-visible": "the image is visible: describe what it shows instead of answering NOT VISIBLE.",
    "truncated": "finish every sentence and end with terminal punctuation, within the requested length",
    "repetition": "do not repeat words, phrases or tags",
    "duplicate-caption": "describe what is specific to this image, so that its caption differs from other images'",
    "meta-opening": "start directly with the subject, never with 'The image shows' or similar",
    "forbidden-word": "do not use the words image, photo, picture (nor foreground in a long caption)",
    "tag-format": "write lowercase comma-separated tags: no articles, no connecting words, no other punctuation",
    "review:recaption": "a reviewer found the earlier caption wrong: describe only what is clearly visible",
}


def _is_review(stage_dir: Path) -> bool:
    from gpic_lab.fsio import read_parquet

    return _stages(read_parquet(stage_dir / "decisions.parquet", columns=["stage"])) == {"review"}


def budgets(base: dict[str, int] | None = None, factor: float = 2.0) -> dict[str, int]:
    """Token budgets for the second pass: ``factor`` × the first pass's (default: the per-level defaults)."""
    from gpic_lab.caption.levels import MAX_NEW_TOKENS

    if factor <= 0:
        raise UsageError(f"--redo-budget must be > 0, got {factor}")
    return {lv: max(1, int(round((base or MAX_NEW_TOKENS)[lv] * factor))) for lv in MAX_NEW_TOKENS}


def _stages(frame: Any) -> set[str]:
    return set(frame["stage"].astype(str)) if "stage" in frame.columns else {"caption-qc"}


def failed(qc_dir: str | Path) -> Any:
    """The rows to recaption (key, shard, caption_type, reason, reasons, detail): the failed rows of a caption-qc
    stage directory, or the ``recaption`` verdicts of a review export."""
    from gpic_lab.fsio import read_parquet

    path = Path(qc_dir) / "decisions.parquet"
    if not path.is_file():
        raise UsageError(f"--redo {qc_dir}: no decisions.parquet (a `stage caption-qc` / run_qc output directory, "
                         "or a `review export` directory)")
    frame = read_parquet(path)
    stages = _stages(frame)
    if stages not in ({"caption-qc"}, {"review"}):
        raise UsageError(f"--redo {qc_dir}: decisions of stage(s) {sorted(stages)}, not caption-qc or review")
    for col in ("caption_type", "reasons", "detail"):
        if col not in frame.columns:
            frame[col] = ""
    if stages == {"review"}:
        chosen = frame.get("review_action", "").astype(str) == "recaption"
        frame["reasons"] = "review:recaption"
    else:
        chosen = ~frame["keep"].astype(bool)
    return frame.loc[chosen, ["key", "shard", "caption_type", "reason", "reasons", "detail"]]


def correction_hint(level: str, reasons: str, detail: str) -> str:
    """The text appended to the level's prompt: what failed and what to do instead."""
    from gpic_lab.caption.checks import DEFAULT_PARAMS

    names = [r for r in str(reasons or "").split(";") if r]
    advice = [ADVICE[r] for r in names if r in ADVICE]
    if "length" in names:
        words = DEFAULT_PARAMS["words"][level]
        if level == "tag":
            advice.append(f"write {DEFAULT_PARAMS['tags'][0]}-{DEFAULT_PARAMS['tags'][1]} tags")
        else:
            s = DEFAULT_PARAMS["sentences"][level]
            advice.append(f"write {s[0]}-{s[1]} sentences of {words[0]}-{words[1]} words in all")
    why = f" ({detail})" if detail else ""
    return (f"\n\nCorrection: an earlier caption of this image failed the caption check: {', '.join(names) or 'qc'}"
            f"{why}. Write a new caption that follows every rule above; in particular: {'; '.join(advice)}.")


def level_of(row: Any, seed: int) -> str:
    """The level to recaption at: the failed caption's own, or the key's hashed level when that one is invalid."""
    from gpic_lab.caption.levels import LEVELS, caption_type_for

    return row.caption_type if row.caption_type in LEVELS else caption_type_for(row.key, seed)


def recaption(paths: Sequence[str], out_dir: str | Path, captioner: Any, rows: Any, seed: int = 0,
              batch_size: int = 8, workers: int = 2, max_pixels: int | None = None,
              on_corrupt: str = "raise") -> dict[str, Any]:
    """Recaption the failed ``rows`` found in ``paths``; writes DIR/<shard>.redo.captions.parquet per shard."""
    from gpic_lab.caption.captioner import run_batches, write_rows
    from gpic_lab.caption.feed import decoded, read_shard
    from gpic_lab.caption.levels import load_prompt
    from gpic_lab.shards.reader import list_shards

    todo = rows[~rows["reason"].isin(NOT_REDONE)]
    want = {r.key: r for r in todo.itertuples()}
    found: set[str] = set()
    written = 0
    for shard in list_shards(list(paths)):
        jobs = [(s, level_of(want[s.key], seed)) for s in read_shard(shard, on_corrupt) if s.key in want]
        if not jobs:
            continue
        prompt_of = {s.key: load_prompt(lv)[0] + correction_hint(lv, want[s.key].reasons, want[s.key].detail)
                     for s, lv in jobs}
        items = list(decoded(jobs, max_pixels, workers, on_corrupt=on_corrupt))
        results = run_batches(captioner, items, batch_size, prompt_of=prompt_of)
        out_rows = [_row(s, lv, r, shard, captioner, want[s.key], prompt_of[s.key])
                    for (s, lv, _), r in zip(items, results, strict=True)]
        write_rows(Path(out_dir) / f"{Path(shard).stem}.redo.captions.parquet", sorted(out_rows, key=lambda r: r["key"]))
        found |= {r["key"] for r in out_rows}
        written += len(out_rows)
    return {"failed": len(rows), "redone": written, "not_redone": int(rows["reason"].isin(NOT_REDONE).sum()),
            "not_found": len(set(want) - found)}


def _row(sample: Any, level: str, result: dict[str, Any], shard: str, captioner: Any, failed_row: Any,
         prompt: str) -> dict[str, Any]:
    from gpic_lab.caption.levels import load_prompt

    version = load_prompt(level)[1] + "+redo"
    return {"key": sample.key, "shard": Path(shard).name, "caption_type": level, "caption": result["text"],
            "prompt_version": version, "model": captioner.model, "backend": captioner.name,
            "sampling": json.dumps(captioner.sampling, sort_keys=True), "max_new_tokens": int(result["max_new_tokens"]),
            "n_tokens": int(result["n_tokens"]), "truncated": bool(result["truncated"]),
            "model_warning": captioner.model_warning, "redo_of": str(failed_row.reasons or failed_row.reason),
            "redo_hint": prompt.rsplit("Correction: ", 1)[-1]}


def requalify(qc_dir: str | Path, redo_files: Sequence[str]) -> tuple[Any, Any]:
    """QC again over the first pass's shards and parameters plus the redo captions; keeps the first pass under
    ``QC_DIR/first_pass/``; returns (first-pass frame, second-pass frame)."""
    from gpic_lab.caption.qc import run_qc
    from gpic_lab.fsio import read_parquet

    qc_dir = Path(qc_dir)
    first_dir = qc_dir / "first_pass"
    if not (first_dir / "decisions.parquet").is_file():  # a rerun keeps the original first pass
        first_dir.mkdir(parents=True, exist_ok=True)
        for name in ("decisions.parquet", "counts.csv", "qc_params.json"):
            if (qc_dir / name).is_file():
                shutil.copy2(qc_dir / name, first_dir / name)
    conf_path = first_dir / "qc_params.json"
    if not conf_path.is_file():
        raise UsageError(f"--redo {qc_dir}: no qc_params.json (rerun caption QC with this version to record its "
                         "shards and parameters)")
    conf = json.loads(conf_path.read_text())
    params = dict(conf["params"])
    earlier = params.get("captions") or []
    params["captions"] = [*([earlier] if isinstance(earlier, str) else earlier), *redo_files]
    second, _ = run_qc(conf["shards"], str(qc_dir), params)
    return read_parquet(first_dir / "decisions.parquet"), second


def requalify_review(review_dir: str | Path, redo_files: Sequence[str]) -> tuple[Any, Any]:
    """The review table's second pass: a recaptioned key whose new caption passes its level's rules is kept
    (``review_action`` ``recaptioned``); the first pass is kept under
    ``first_pass/``. Returns (first-pass frame, second-pass frame)."""
    import pandas as pd

    from gpic_lab.caption.checks import check_caption
    from gpic_lab.fsio import read_parquet, write_parquet_atomic

    review_dir = Path(review_dir)
    first_dir = review_dir / "first_pass"
    if not (first_dir / "decisions.parquet").is_file():
        first_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(review_dir / "decisions.parquet", first_dir / "decisions.parquet")
    first = read_parquet(first_dir / "decisions.parquet")
    new = pd.concat([read_parquet(f) for f in redo_files], ignore_index=True) if redo_files else pd.DataFrame()
    fixed = {r["key"] for r in new.to_dict("records")
             if not check_caption(str(r.get("caption") or ""), str(r.get("caption_type") or ""),
                                  truncated=bool(r.get("truncated"))).reasons}
    second = first.copy()
    hit = second["key"].isin(sorted(fixed)) & (second["review_action"].astype(str) == "recaption")
    second.loc[hit, ["keep", "reason", "review_action"]] = [True, None, "recaptioned"]
    write_parquet_atomic(review_dir / "decisions.parquet", second)
    return first, second


def before_after(first: Any, second: Any) -> Any:
    """Failures per reason in the first and second pass (rows ``kept`` and ``total`` included)."""
    import pandas as pd

    a = first["reason"].fillna("kept").value_counts().rename("before")
    b = second["reason"].fillna("kept").value_counts().rename("after")
    table = pd.concat([a, b], axis=1).fillna(0).astype(int)
    table.loc["total"] = [len(first), len(second)]
    order = ["kept", *sorted(i for i in table.index if i not in ("kept", "total")), "total"]
    return table.reindex(order).fillna(0).astype(int).rename_axis("reason").reset_index()


def redo(paths: Sequence[str], out_dir: str | Path, captioner: Any, qc_dir: str | Path, seed: int = 0,
         batch_size: int = 8, workers: int = 2, max_pixels: int | None = None,
         on_corrupt: str = "raise") -> dict[str, Any]:
    """The whole second pass; returns stats with ``before_after`` (also written to QC_DIR/redo_counts.csv)."""
    from gpic_lab.fsio import write_bytes_atomic

    first_dir = Path(qc_dir) / "first_pass"
    source = first_dir if (first_dir / "decisions.parquet").is_file() else Path(qc_dir)
    rows = failed(source)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    stats = recaption(paths, out_dir, captioner, rows, seed, batch_size, workers, max_pixels, on_corrupt)
    redo_files = sorted(str(p) for p in Path(out_dir).glob("*.redo.captions.parquet"))
    review = _stages(rows) == {"review"} if "stage" in rows.columns else _is_review(source)
    first, second = requalify_review(qc_dir, redo_files) if review else requalify(qc_dir, redo_files)
    table = before_after(first, second)
    write_bytes_atomic(Path(qc_dir) / "redo_counts.csv", table.to_csv(index=False).encode())
    fixed = set(rows["key"]) & set(second.loc[second["keep"].astype(bool), "key"])
    return {**stats, "fixed": len(fixed), "still_failing": int((~second["keep"].astype(bool)).sum()),
            "redo_files": redo_files, "before_after": table}
