"""Cross-level consistency (real all-MiniLM-L6-v2), the five-axis judge parser and plumbing, the review table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpic_lab.audits import consistency, judge
from gpic_lab.audits.review import ReviewTable
from gpic_lab.errors import GpicError, UsageError

LEVELS = {
    "good": {"tag": "dog, ball, grass", "short": "A dog plays with two balls on the grass.",
             "long": "A brown dog runs across green grass toward two red balls. No people are visible."},
    "bad": {"short": "A woman holds three cups at a table.",
            "medium": "Two cups stand on a table. There is no person in the picture.",
            "long": "A red tram drives through a snowy mountain village at night."},
}


def test_compare_finds_denials_and_count_mismatches() -> None:
    c = consistency.compare("A woman holds three cups.", "Two cups. There is no person in the picture.")
    assert c["denied"] == "person" and c["count_mismatch"] == "cup" and c["contradictions"] == 2
    assert consistency.compare("two dogs", "a dog")["contradictions"] == 0  # no explicit count on one side
    assert consistency.compare("A cat.", "A cat and a dog.")["only_in_b"] == "dog"


def test_consistency_table_with_minilm() -> None:
    table = consistency.consistency_table(LEVELS, consistency.load_minilm())
    assert len(table) == 3 + 3 and table["similarity"].between(-1, 1.0001).all()
    flagged = consistency.flag(table, min_similarity=0.3)
    assert set(flagged["key"]) == {"bad"}
    worst = flagged.iloc[0]
    assert (worst["level_a"], worst["level_b"]) == ("short", "medium") and worst["contradictions"] == 2
    tram = table[(table["key"] == "bad") & (table["level_b"] == "long")]["similarity"]
    good = table[table["key"] == "good"]["similarity"]
    assert tram.max() < good.min()  # the level describing another image is the least similar
    keys = consistency.per_key(table)
    assert keys.iloc[0]["key"] == "bad" and keys.iloc[0]["contradictions"] == 2
    assert len(consistency.similarity_figure(table).axes) == 2
    no_model = consistency.consistency_table(LEVELS)
    assert no_model["similarity"].isna().all() and no_model["contradictions"].sum() == 2


@pytest.mark.parametrize(("text", "scores"), [
    ('{"summary": 2, "counting": 1, "spatial": 2, "attribute_binding": 0, "ocr": "N/A"}',
     {"summary": 2, "counting": 1, "spatial": 2, "attribute_binding": 0, "ocr": None}),
    ("Sure! ```json\n{'overall': 2, 'count': '1', 'spatial': 2.0, 'attributes': 2, 'text': N/A,}\n``` done",
     {"summary": 2, "counting": 1, "spatial": 2, "attribute_binding": 2, "ocr": None}),
    ("Summary: 2/2\nCounting: 0\nSpatial: 1\nAttribute binding: 2\nOCR: n/a",
     {"summary": 2, "counting": 0, "spatial": 1, "attribute_binding": 2, "ocr": None}),
    ('{summary: 1, counting: null, spatial: 1, attribute-binding: 1, ocr: 2}',
     {"summary": 1, "counting": None, "spatial": 1, "attribute_binding": 1, "ocr": 2}),
])
def test_parse_judgement_accepts(text: str, scores: dict) -> None:
    j = judge.parse_judgement(text)
    assert j.ok and j.scores == scores and j.error == ""


def test_parse_judgement_rejects() -> None:
    assert not judge.parse_judgement("I cannot grade this.").ok
    assert judge.parse_judgement("").error == "no axis scores found"
    j = judge.parse_judgement('{"summary": 5, "counting": 1, "spatial": 2, "attribute_binding": 2, "ocr": 2}')
    assert not j.ok and "summary" in j.error and "summary" not in j.scores
    j = judge.parse_judgement('{"summary": 2, "counting": 1}')
    assert not j.ok and j.missing == ("spatial", "attribute_binding", "ocr")
    assert "Reference caption (correct): a cat" in judge.build_prompt("a dog", "a cat")
    assert "Reference" not in judge.build_prompt("a dog")


def test_judge_plumbing_with_tiny_qwen(tmp_path: Path) -> None:
    from PIL import Image

    from gpic_lab.models import qwen_vl

    model, processor = qwen_vl.load_qwen3vl(qwen_vl.build_tiny_qwen3vl(tmp_path / "tiny"), device="cpu")
    images = [Image.new("RGB", (64, 64), c) for c in ("red", "blue", "green")]
    scores = judge.judge_captions(model, processor, images, ["a red square", "a blue square", "a dog"],
                                  references=["red", None, "green"], batch_size=2, max_new_tokens=8)
    assert len(scores) == 3 and list(scores.columns[:5]) == list(judge.AXES)
    s = judge.summarize(scores)
    assert s["judged"] == 3 and s["parse_failures"] == int((~scores["ok"]).sum())
    with pytest.raises(UsageError):
        judge.judge_captions(model, processor, images[:1], ["a", "b"])
    import pandas as pd

    empty = judge.summarize(pd.DataFrame(columns=[*judge.AXES, "ok", "error", "raw"]))
    assert empty["judged"] == 0 and empty["mean"]["summary"] is None


def test_review_table_persists(tmp_path: Path) -> None:
    items = [{"id": "k1", "caption": "A dog.", "image": b"", "rate": 1.0}, {"id": "k2", "caption": "A cup."}]
    path = tmp_path / "review" / "verdicts.json"
    table = ReviewTable(items, path)
    assert table.counts()["unreviewed"] == 2 and not path.exists()
    table.set_verdict("k1", "hallucinated", "no dog on a checkerboard")
    again = ReviewTable(items, path)  # e.g. after a kernel restart
    assert again.verdict("k1") == "hallucinated" and again.verdict("k2") == "unreviewed"
    assert json.loads(path.read_text())["k1"]["note"] == "no dog on a checkerboard"
    box = again.widget(columns=("rate",))
    pick = box.children[1].children[2].children[0]  # row k1 -> [image, text, [verdict, note]]
    pick.value = "ok"
    assert ReviewTable(items, path).verdict("k1") == "ok"
    assert ReviewTable(items, path).frame().set_index("id").loc["k1", "note"] == "no dog on a checkerboard"
    with pytest.raises(UsageError):
        again.set_verdict("k1", "great")
    with pytest.raises(UsageError):
        again.set_verdict("k9", "ok")
    with pytest.raises(UsageError):
        ReviewTable([{"id": "a"}, {"id": "a"}], path)
    path.write_text("[1, 2]")
    with pytest.raises(GpicError):
        ReviewTable(items, path)
