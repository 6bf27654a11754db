"""Caption hallucination audit: extractor, scoring with a stub answer table, the real ImageNet classifier on the
sample corpus's planted hallucinations, and the VLM plumbing with the tiny random Qwen3-VL."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from gpic_lab.audits import hallucination as h
from gpic_lab.audits.objects import asserted, denied, extract_mentions
from gpic_lab.errors import UsageError


def test_extractor_counts_attributes_negation_plurals() -> None:
    ms = extract_mentions("A red umbrella stands in the middle, and two cups sit near 3 traffic lights.")
    assert [(m.concept, m.word, m.count, m.attributes) for m in ms] == [
        ("umbrella", "umbrella", None, ("red",)), ("cup", "cups", 2, ()), ("traffic light", "traffic lights", 3, ())]
    ms = extract_mentions("There are no clouds, birds or other shapes. A small brown dog sits.")
    assert [(m.concept, m.negated) for m in ms] == [("bird", True), ("dog", False)]
    assert ms[1].attributes == ("small", "brown")
    assert set(asserted("tabby cat, green eyes, puppies, a pair of skis")) == {"cat", "dog", "ski"}
    assert asserted("a pair of skis")["ski"].count == 2
    assert denied("A room without any chairs.") == {"chair"}
    assert extract_mentions("Soft waves of colour blend together.") == []
    assert extract_mentions("A caterpillar on a bus.")[0].concept == "bus"  # whole words only ('cat' not matched)


# hand-made captions with known hallucinations: the image (by key) holds exactly the objects in TRUTH
TRUTH = {"k1": {"dog", "ball"}, "k2": {"cat"}, "k3": {"person", "bicycle"}}
CAPTIONS = [("k1", "short", "A dog chases a red ball past a bench."),          # bench hallucinated
            ("k1", "long", "A dog and a ball. No cats are visible."),         # negated cat: not asked
            ("k2", "short", "A cat sleeps on a sofa next to two cups."),      # sofa (couch), cups hallucinated
            ("k3", "short", "A man rides a bicycle."),                        # clean
            ("k3", "tag", "sunset, sky, colours")]                            # no objects


def _table() -> h.TableAnswerer:
    concepts = {m.concept for _, _, c in CAPTIONS for m in extract_mentions(c)}
    return h.TableAnswerer({(k, c): c in present for k, present in TRUTH.items() for c in concepts})


def test_scoring_with_stub_answers() -> None:
    items = [h.CaptionItem(k, c, t, meta={"source": "flickr" if k != "k2" else "wikimedia"}) for k, t, c in CAPTIONS]
    mentions, captions = h.audit_captions(items, _table())
    assert len(mentions) == 10 and mentions["answer"].notna().all()  # negated "cats" is not asked
    by = captions.set_index(["key", "caption_type"])
    assert by.loc[("k1", "short"), "hallucinated_objects"] == "bench"
    assert by.loc[("k1", "short"), "hallucination_rate"] == pytest.approx(1 / 3)
    assert by.loc[("k2", "short"), "hallucinated_objects"] == "couch;cup"
    assert by.loc[("k2", "short"), "hallucination_rate"] == pytest.approx(2 / 3)
    assert by.loc[("k3", "short"), "hallucinated"] == 0 and by.loc[("k1", "long"), "chair_s"] == 0
    assert math.isnan(by.loc[("k3", "tag"), "hallucination_rate"])  # nothing to verify
    rates = h.chair(mentions, captions)
    assert rates["chair_i"] == pytest.approx(3 / 10) and rates["chair_s"] == pytest.approx(2 / 4)
    assert rates["captions_with_hallucination"] == 2 and rates["coverage"] == 1.0
    obj = h.per_object(mentions).set_index("concept")
    assert obj.loc["couch", "rate"] == 1.0 and obj.loc["dog", "rate"] == 0.0 and obj.loc["dog", "verified"] == 2
    agg = h.aggregate(captions, "source").set_index("source")
    assert agg.loc["wikimedia", "chair_i"] == pytest.approx(2 / 3) and agg.loc["flickr", "chair_i"] == pytest.approx(1 / 7)
    q = mentions[mentions["caption_type"] == "short"].set_index(["key", "concept"])["question"]
    assert q[("k2", "cup")] == "Are there two cups in the image? Answer yes or no."
    assert q[("k1", "ball")] == "Is there a red ball in the image? Answer yes or no."
    with pytest.raises(UsageError):
        h.aggregate(captions, "nope")
    assert len(h.rates_figure(captions, groups=("caption_type", "source")).axes) == 2


def test_answerers_parse_references_chain() -> None:
    assert h.parse_yes_no("Yes.") is True and h.parse_yes_no(" no, there is none") is False
    assert h.parse_yes_no("nothing") is None and h.parse_yes_no("") is None and h.parse_yes_no("maybe yes") is None
    refs = h.ReferenceAnswerer({"k1": ["A dog with a ball.", "dog, ball, grass"]})
    items = [h.CaptionItem("k1", "A dog, a ball and a bench."), h.CaptionItem("k9", "A bench.")]
    mentions, _ = h.audit_captions(items, refs)
    assert mentions["answer"].tolist() == [True, True, False, None]
    both = h.chain(refs, h.TableAnswerer({("k9", "bench"): True}))
    assert h.audit_captions(items, both)[0]["answer"].tolist() == [True, True, False, True]
    assert both.name == "references+table"


def test_classifier_finds_planted_hallucinations(sample_dir: Path) -> None:
    with open(sample_dir / "ground_truth.csv", newline="") as fh:
        planted = {r["key"]: set(r["detail"].removeprefix("objects:").split(";"))
                   for r in csv.DictReader(fh) if r["kind"] == "hallucination"}
    items = h.items_from_shards([sample_dir / "raw" / "gpic_raw_captions.tar", sample_dir / "train"])
    mentions, captions = h.audit_captions(items, h.ClassifierAnswerer())
    found = {r.key: set(r.hallucinated_objects.split(";")) for r in captions.itertuples() if r.hallucinated}
    assert {k: found.get(k) for k in planted} == planted
    raw_found = {k for k in found if captions.set_index("key").loc[k, "shard"].startswith("raw/")}
    assert raw_found == set(planted)  # no honest raw caption is flagged
    ok = mentions[mentions["concept"].isin(["cat", "cup", "tripod"]) & ~mentions["key"].isin(planted)]
    assert len(ok) >= 3 and not ok["hallucinated"].any()  # clear objects of the clean photos are confirmed
    assert set(captions["size"]) <= {"<512", "512-1023", "1024-2047", ">=2048"}


def test_vlm_answerer_plumbing_with_tiny_qwen(tmp_path: Path, sample_dir: Path) -> None:
    from gpic_lab.models import qwen_vl

    model, processor = qwen_vl.load_qwen3vl(qwen_vl.build_tiny_qwen3vl(tmp_path / "tiny"), device="cpu")
    items = h.items_from_shards([sample_dir / "raw" / "gpic_raw_captions.tar"])[-3:]
    vlm = h.VLMAnswerer(model, processor, batch_size=2)
    mentions, captions = h.audit_captions(items, vlm)
    assert len(vlm.raw) == len(mentions) == 4  # dog, umbrella, cups, bicycle
    assert set(mentions["answer"].map(repr)) <= {"True", "False", "None"}
    assert h.chair(mentions, captions)["mentions"] == 4
    with pytest.raises(UsageError):
        h.audit_captions([h.CaptionItem("x", "A dog.")], vlm)  # no image


def test_caption_helpers(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.audits import captions as cap

    items = h.items_from_shards([sample_dir / "raw" / "gpic_raw_captions.tar"])
    stub = h.TableAnswerer({(it.key, m.concept): False for it in items[-3:] for m in extract_mentions(it.caption)})
    _, scored = h.audit_captions(items, stub)
    planted = cap.planted_check(scored, sample_dir / "ground_truth.csv")
    assert len(planted) == 3 and planted["all_found"].all()
    assert set(planted.set_index("key").loc["4b92f7b678f1d8fcc1ac9d60ee3ab38a1d6658b79f8fabf670bac5a8b55b1aef",
                                           ["expected", "found"]]) == {"cup;umbrella"}
    missed = cap.planted_check(scored.assign(hallucinated_objects=""), sample_dir / "ground_truth.csv")
    assert not missed["all_found"].any()
    worst = cap.worst(scored, 2)
    assert len(worst) == 2 and worst["hallucination_rate"].min() == 1.0
    by_key = cap.scores_by_key(scored)
    assert by_key[worst["key"][0]]["hallucination_rate"] == 1.0 and by_key[items[0].key]["hallucination_rate"] is None
    rows = cap.review_items(items, worst)
    assert rows[0]["image"][:2] == b"\xff\xd8" and rows[0]["id"].endswith(":" + worst["caption_type"][0])
    assert len(cap.worst_figure(items, worst).axes) == 4
    assert cap.make_answerer("references+classifier", {}).name == "references+imagenet-classifier"
    for bad in ("vlm", "nope", ""):
        with pytest.raises(UsageError):
            cap.make_answerer(bad)
    assert cap.load_vlm("", tmp_path) is None
