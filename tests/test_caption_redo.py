"""The caption second pass (`caption --redo QC_DIR`): only failed keys are recaptioned with a correction hint and a
larger budget, QC runs again, pack takes the corrected captions and drops only what still fails; NOT VISIBLE. never
reaches a pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gpic_lab.caption import qc, redo, store
from gpic_lab.errors import UsageError


class _Scripted:
    """A captioner following the Captioner protocol whose output depends on the prompt: with a correction hint it
    writes a caption that keeps every rule of the level (unique per image: the mean colour is in it), except when the
    hint is about truncation, where it stays stubborn. It records every prompt it saw."""

    name, model, model_warning, sampling = "scripted", "scripted", "", {"do_sample": False}

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def caption(self, images: list[Any], levels: list[str], prompts: list[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for image, level, prompt in zip(images, levels, prompts or [""] * len(images), strict=True):
            self.prompts.append(prompt)
            r, g, b = (int(v) for v in np.asarray(image.convert("RGB"), np.float64).mean(axis=(0, 1)))
            text = {
                "tag": f"soft shapes, red {r}, green {g}, blue {b}",
                "short": f"Soft shapes with red {r}, green {g} and blue {b} on average fill the whole view.",
                "medium": f"Soft shapes with red {r}, green {g} and blue {b} on average fill the whole view. "
                          "They overlap near the middle and fade toward the edges on a plain background.",
                "long": " ".join([f"Soft shapes with red {r}, green {g} and blue {b} on average fill the view.",
                                  "They overlap near the middle of the scene.", "Their edges fade gently outward.",
                                  "A plain background surrounds them on every side.",
                                  "No text or lettering appears anywhere."]),
            }[level]
            if "truncated" in prompt.split("Correction:")[-1]:
                text = "Soft shapes with red and green"
            out.append({"text": text, "n_tokens": len(text.split()), "truncated": False, "max_new_tokens": 64})
        return out


def test_hints_and_budgets() -> None:
    hint = redo.correction_hint("short", "forbidden-word;length", "forbidden words: photo; 60 words (want 8-35)")
    assert "forbidden-word, length (forbidden words: photo" in hint and "do not use the words image" in hint
    assert "1-2 sentences of 8-35 words" in hint and hint.startswith("\n\nCorrection:")
    assert "3-8 tags" in redo.correction_hint("tag", "length", "")
    assert redo.budgets(None, 2.0) == {"tag": 96, "short": 160, "medium": 320, "long": 1024}
    assert redo.budgets({"tag": 10, "short": 10, "medium": 10, "long": 10}, 1.5)["long"] == 15
    with pytest.raises(UsageError):
        redo.budgets(None, 0)


def test_real_tiny_captioner_takes_per_image_prompts(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.caption.captioner import TransformersCaptioner
    from gpic_lab.models import qwen_vl
    from gpic_lab.shards.reader import iter_samples

    captioner = TransformersCaptioner(qwen_vl.build_tiny_qwen3vl(tmp_path / "tiny"), device="cpu",
                                      max_new_tokens=redo.budgets({lv: 3 for lv in ("tag", "short", "medium", "long")}))
    assert captioner.max_new_tokens["short"] == 6
    images = [s.open_image().convert("RGB") for s in iter_samples([sample_dir / "val"])]
    out = captioner.caption(images, ["short", "tag"], ["Describe it.", "Tags please, with a correction hint."])
    assert len(out) == 2 and all(isinstance(r["text"], str) for r in out)


@pytest.fixture
def first_pass(sample_dir: Path, tmp_path: Path) -> tuple[Path, Any]:
    qc_dir = tmp_path / "qc"
    frame, _ = qc.run_qc([str(sample_dir / "raw" / "gpic_raw_captions.tar")], str(qc_dir))
    return qc_dir, frame


def test_redo_fixes_what_it_can_and_pack_drops_only_the_rest(first_pass, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.pack.packer import pack
    from gpic_lab.shards.reader import iter_samples

    qc_dir, first = first_pass
    failed = set(first.loc[~first["keep"], "key"])
    truncated = set(first.loc[first["reason"] == "truncated", "key"])
    assert len(failed) == 10 and len(truncated) == 1
    cap = _Scripted()
    out = tmp_path / "captions"
    stats = redo.redo([str(sample_dir / "raw")], out, cap, qc_dir)
    assert stats["redone"] == 10 and stats["not_found"] == 0 and stats["not_redone"] == 0
    assert len(cap.prompts) == 10 and all("Correction: an earlier caption" in p for p in cap.prompts)
    assert stats["fixed"] == 9 and stats["still_failing"] == 1
    second = pd.read_parquet(qc_dir / "decisions.parquet")
    assert set(second.loc[~second["keep"], "key"]) == truncated
    assert (qc_dir / "first_pass" / "decisions.parquet").is_file()
    table = pd.read_csv(qc_dir / "redo_counts.csv").set_index("reason")
    assert table.loc["kept", "before"] == len(first) - 10 and table.loc["kept", "after"] == len(first) - 1
    assert table.loc["truncated", "after"] == 1 and table.loc["forbidden-word", "before"] == 2
    assert table.loc["forbidden-word", "after"] == 0 and table.loc["total"].tolist() == [len(first)] * 2
    redone = pd.concat([pd.read_parquet(f) for f in store.caption_files([out]) if f.endswith(store.REDO_SUFFIX)])
    assert set(redone["key"]) == failed and redone["prompt_version"].str.endswith("+redo").all()
    # pack: the second-pass decisions drop only the stubborn key; the corrected captions are the packed ones
    packed_dir = tmp_path / "pack"
    pack([str(sample_dir / "raw" / "gpic_raw_captions.tar"), str(qc_dir)], packed_dir, 1, 0, 0, captions=[str(out)])
    packed = {s.key: s.meta for s in iter_samples([packed_dir], images=False)}
    assert failed - truncated <= set(packed) and not truncated & set(packed)
    corrected = dict(zip(redone["key"], redone["caption"], strict=True))
    assert all(packed[k]["caption"] == corrected[k] for k in failed - truncated)
    assert all(m["caption"] != qc.NOT_VISIBLE for m in packed.values())


def test_not_visible_never_reaches_a_pack(sample_dir: Path, tmp_path: Path) -> None:
    """The quality plants carry NOT VISIBLE. captions; packed without any decisions, pack itself refuses them."""
    from gpic_lab.pack.packer import pack
    from gpic_lab.shards.reader import iter_samples

    manifest = pack([str(sample_dir / "raw" / "gpic_raw_quality.tar")], tmp_path / "pack", 1, 0, 0)
    packed = [s.meta["caption"] for s in iter_samples([tmp_path / "pack"], images=False)]
    nv = sum(s.meta["caption"] == qc.NOT_VISIBLE for s in iter_samples([sample_dir / "raw" / "gpic_raw_quality.tar"],
                                                                         images=False))
    assert nv >= 4 and qc.NOT_VISIBLE not in packed and manifest["splits"]["train"]["samples"] == len(packed)
    sheet = (tmp_path / "pack" / "datasheet.md").read_text()
    assert f"| pack | not-visible | {nv} |" in sheet


def test_redo_needs_a_caption_qc_dir(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no decisions.parquet"):
        redo.failed(tmp_path)


def test_cli_redo_with_the_tiny_model(first_pass, sample_dir: Path, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    qc_dir, first = first_pass
    env = {**os.environ, "GPIC_LAB_STATE": str(tmp_path / "state")}
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "caption", str(sample_dir / "raw" / "gpic_raw_captions.tar"),
           "--out", str(tmp_path / "out"), "--model", "tiny", "--redo", str(qc_dir), "--max-new-tokens", "3",
           "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["redone"] == 10 and result["before_after"]["total"] == {"before": len(first), "after": len(first)}
    assert "before" in proc.stderr and (tmp_path / "out" / "gpic_raw_captions.redo.captions.parquet").is_file()
    frame = pd.read_parquet(tmp_path / "out" / "gpic_raw_captions.redo.captions.parquet")
    assert (frame["max_new_tokens"] == 6).all()  # 2 x the first pass's budget
    bad = subprocess.run([*cmd[:9], "--redo", str(tmp_path), "--no-progress"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 2 and "no decisions.parquet" in bad.stderr


def test_redo_takes_a_review_export_and_pack_keeps_the_recaptioned_keys(sample_dir: Path, tmp_path: Path) -> None:
    """Keys a reviewer tagged `recaption` are recaptioned with the reviewer's note as the hint; the review table's
    second pass keeps those whose new caption passes its level's rules, and pack packs them with the new caption,
    while `reject` keys stay out."""
    from gpic_lab.engine.review import Mark, export_marks
    from gpic_lab.pack.packer import pack
    from gpic_lab.shards.reader import iter_samples

    shard = sample_dir / "train" / "gpic_train_00000.tar"
    samples = list(iter_samples([shard], images=False))
    recap, reject = samples[0], samples[1]
    marks = [Mark(recap.key, "recaption", "test", "alice", note="the caption names a dog; there is a cat",
                  caption_type=recap.meta["caption_type"], meta={**recap.meta, "shard": str(shard)}),
             Mark(reject.key, "reject", "test", "alice", meta={**reject.meta, "shard": str(shard)})]
    review_dir = tmp_path / "review"
    export_marks(marks, review_dir)
    cap = _Scripted()
    out = tmp_path / "captions"
    stats = redo.redo([str(shard)], out, cap, review_dir)
    assert stats["redone"] == 1 and len(cap.prompts) == 1 and "there is a cat" in cap.prompts[0]
    assert "review:recaption" in cap.prompts[0]
    second = pd.read_parquet(review_dir / "decisions.parquet").set_index("key")
    assert bool(second.loc[recap.key, "keep"]) and second.loc[recap.key, "review_action"] == "recaptioned"
    assert not bool(second.loc[reject.key, "keep"]) and second.loc[reject.key, "reason"] == "review:reject"
    assert (review_dir / "first_pass" / "decisions.parquet").is_file()
    packed_dir = tmp_path / "pack"
    pack([str(shard), str(review_dir)], packed_dir, 1, 0, 0, captions=[str(out)])
    packed = {s.key: s.meta for s in iter_samples([packed_dir], images=False)}
    assert recap.key in packed and reject.key not in packed
    new_caption = pd.read_parquet(next(out.glob("*.redo.captions.parquet")))["caption"].iloc[0]
    assert packed[recap.key]["caption"] == new_caption != recap.meta["caption"]
