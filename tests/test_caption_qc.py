"""caption QC: planted bad captions caught with the expected reason, honest captions pass, rules per level."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gpic_lab.caption import qc
from gpic_lab.errors import UsageError
from gpic_lab.shards.reader import iter_samples


def _ground_truth(sample_dir: Path, kinds: tuple[str, ...]) -> dict[str, dict[str, str]]:
    with open(sample_dir / "ground_truth.csv", newline="") as fh:
        return {r["key"]: r for r in csv.DictReader(fh)
                if r["shard"] == "raw/gpic_raw_captions.tar" and r["kind"] in kinds}


def test_planted_bad_captions_caught_with_the_right_reason(sample_dir: Path) -> None:
    samples = list(iter_samples([sample_dir / "raw" / "gpic_raw_captions.tar"]))
    decisions = {d.key: d for d in qc.qc_stage(samples, {})}
    assert len(decisions) == len(samples)
    planted = _ground_truth(sample_dir, ("caption-qc",))
    assert len(planted) >= 10
    wrong = {k[:12]: (r["label"], decisions[k].reason) for k, r in planted.items() if decisions[k].reason != r["label"]}
    assert not wrong
    assert all(not decisions[k].keep for k in planted)
    # controls and hallucinated-object captions are well-formed: QC keeps them (the hallucination audit's job)
    others = _ground_truth(sample_dir, ("control", "hallucination"))
    assert others and all(decisions[k].keep for k in others)


def test_honest_captions_of_all_levels_pass(sample_dir: Path) -> None:
    captions = json.loads((sample_dir / "captions.json").read_text())
    rows = [{"key": f"{k}-{level}", "caption": v[level], "caption_type": level}
            for k, v in captions.items() for level in qc.LEVELS]
    failed = [(r["key"][:8], r["caption_type"], r["detail"]) for r in qc.qc_rows(rows)
              if not r["keep"] and not r["not_visible"]]
    assert not failed
    # the honest NOT VISIBLE. of the real motion-blurred clock fails by policy: such images never reach a pack
    assert {r["reason"] for r in qc.qc_rows(rows) if r["not_visible"]} == {"not-visible"}


def test_clean_shards_pass(sample_dir: Path) -> None:
    samples = list(iter_samples([sample_dir / "train", sample_dir / "val", sample_dir / "test"]))
    assert all(d.keep for d in qc.qc_stage(samples, {})), [d.extra for d in qc.qc_stage(samples, {}) if not d.keep]


@pytest.mark.parametrize(("caption", "level", "reason"), [
    ("red car, city street, night", "tag", None),
    ("Red car, city street, night", "tag", "tag-format"),
    ("red car; city street; night", "tag", "tag-format"),
    ("red car, an old street, night", "tag", "tag-format"),
    ("red car, street", "tag", "length"),
    ("red car, a very long red sports car, street", "tag", "tag-format"),
    ("red car, street, red car, night", "tag", "repetition"),
    ("A red car parks on a wet city street at night under bright orange lamps.", "short", None),
    ("A red car parks on a wet city street at night. Lamps glow. People walk by.", "short", "length"),
    ("This image is a red car parked on a wet city street at night under orange lamps.", "short", "meta-opening"),
    ("A picture of a red car parked on a wet city street at night under orange lamps.", "short", "forbidden-word"),
    ("A red car parks on a wet city street at night under bright orange lamps and", "short", "truncated"),
    ("not visible", "short", "not-visible"),
    ("NOT VISIBLE.", "medium", "not-visible"),
    ("", "long", "empty"),
    ("A car.", "caption", "bad-type"),
])
def test_rules(caption: str, level: str, reason: str | None) -> None:
    row = qc.qc_rows([{"key": "k", "caption": caption, "caption_type": level}])[0]
    assert row["reason"] == reason, row["detail"]
    assert row["keep"] == (reason is None)


def test_long_rules_foreground_sentences_and_truncation_flag() -> None:
    body = ("A red car stands on a wet street at night. Its paint shines under orange lamps. "
            "A sign above the door reads \"OPEN 24 HOURS\" in white letters. Two people walk past on the left. "
            "Rain drops streak the air in front of the shop window. The sky above the buildings is black.")
    assert qc.check_caption(body, "long").reasons == ()
    assert qc.check_caption(body.replace("in front of", "in the foreground of"), "long").reasons == ("forbidden-word",)
    assert qc.check_caption(body.replace("in front of", "in the foreground of"), "medium").reasons == ("length",)
    assert qc.check_caption(body, "long", truncated=True).reasons == ("truncated",)
    three = " ".join(body.split(". ")[:3]) + "."
    assert "length" in qc.check_caption(three, "long").reasons


def test_not_visible_depends_on_the_image() -> None:
    from PIL import Image

    blank = Image.new("RGB", (64, 64), (250, 250, 250))
    noisy = Image.effect_noise((64, 64), 60).convert("RGB")
    assert not qc.image_usable(blank) and qc.image_usable(noisy)
    deep = Image.fromarray(np.asarray(noisy.convert("L"), dtype=np.uint16) * 257)  # 16-bit grey, mode I;16
    assert deep.mode.startswith("I") and qc.image_usable(deep)  # convert("L") alone clips it to blank white
    logo = np.zeros((64, 64, 4), np.uint8)
    logo[16:48, 16:48, 3] = 255  # black square on transparent black: all black without compositing on white
    assert qc.image_usable(Image.fromarray(logo)) and not qc.image_usable(Image.fromarray(logo).convert("RGB"))
    assert qc.check_caption("NOT VISIBLE.", "short", usable=False).reasons == ("not-visible-image",)
    assert qc.check_caption("NOT VISIBLE.", "short").reasons == ("not-visible",)  # unknown: a recaption may fix it
    assert qc.check_caption("NOT VISIBLE.", "short", usable=True).reasons == ("not-visible",)


def test_duplicates_modes_and_not_visible_is_never_a_duplicate() -> None:
    caps = {"a": "A cat on a mat.", "b": "a cat on a  mat", "c": "A dog.", "d": "NOT VISIBLE.", "e": "NOT VISIBLE."}
    assert qc.duplicate_keys(caps) == {"a": "a", "b": "a"}
    assert qc.duplicate_keys(caps, "extra") == {"b": "a"}
    with pytest.raises(UsageError, match="duplicates"):
        qc.merged_params({"duplicates": "some"})
    with pytest.raises(UsageError, match="unknown parameter 'wordz'"):
        qc.merged_params({"wordz": 3})
    assert qc.merged_params({"words": {"short": [1, 99]}})["words"]["medium"] == [18, 80]
    for bad, msg in (({"words": {"short": [40, 8]}}, "words.short must be"), ({"words": {"short": "x"}}, "words.short"),
                     ({"words": {"huge": [1, 2]}}, "unknown level"), ({"words": [1, 2]}, "must be a mapping"),
                     ({"usable_std": "a"}, "usable_std must be a number"), ({"tags": [8, 3]}, "tags must be")):
        with pytest.raises(UsageError, match=msg):
            qc.merged_params(bad)


def test_run_qc_writes_stage_dir_and_tables(sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    frame, rows = qc.run_qc([str(sample_dir / "raw" / "gpic_raw_captions.tar"), str(sample_dir / "train")],
                            str(tmp_path / "qc"))
    stored = pd.read_parquet(tmp_path / "qc" / "decisions.parquet")
    assert len(stored) == len(frame) == len(rows)
    assert set(stored["stage"]) == {"caption-qc"}
    assert (stored["reason"].isna() == stored["keep"]).all()
    assert {"score_words", "reasons", "license_family", "source"} <= set(stored.columns)
    assert sorted(p.name for p in (tmp_path / "qc" / "done").iterdir()) == [
        "gpic_raw_captions.done", "gpic_train_00000.done", "gpic_train_00001.done"]
    counts = pd.read_csv(tmp_path / "qc" / "counts.csv")
    assert counts["count"].sum() == len(stored)
    rates = qc.rate_table(rows)
    assert set(rates["caption_type"]) <= set(qc.LEVELS) and (rates["n"].sum() == len(rows))
    worst = qc.worst_examples(rows, 3)
    assert len(worst) == 3 and worst.loc[0, "reasons"].count(";") >= 1


def test_caption_overrides_from_a_caption_output_dir(sample_dir: Path, tmp_path: Path) -> None:
    """`-p captions=DIR` (a `gpic-lab caption` output: parquet + done/ markers) replaces the records' captions."""
    import pandas as pd

    samples = list(iter_samples([sample_dir / "val"]))
    out = tmp_path / "captions"
    (out / "done").mkdir(parents=True)
    (out / "done" / "gpic_val_00000.done").write_text("1\n")
    rows = {"key": [samples[0].key], "caption_type": ["short"], "prompt_version": ["short/v1"],
            "caption": ["A photo of a small red boat on a calm lake at dawn."], "truncated": [False]}
    pd.DataFrame(rows).to_parquet(out / "gpic_val_00000.captions.parquet")
    got = {d.key: d for d in qc.qc_stage(samples, {"captions": str(out)})}
    assert got[samples[0].key].reason == "forbidden-word"
    assert all(got[s.key].keep for s in samples[1:])
    with pytest.raises(UsageError, match="no captions parquet"):
        qc.qc_stage(samples, {"captions": str(tmp_path / "missing")})
    both = pd.DataFrame({k: v * 2 for k, v in rows.items()})  # a `--levels all` file: which level to judge?
    both.to_parquet(out / "gpic_val_00000.captions.parquet")
    with pytest.raises(UsageError, match="several captions for key"):
        qc.qc_stage(samples, {"captions": str(out)})
