"""Bias audit: word lists, caption hits, frequencies with Wilson intervals, co-occurrence, Haar-cascade faces."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gpic_lab.audits import bias
from gpic_lab.errors import UsageError

ROWS = [
    {"key": "a", "caption": "A woman works as a doctor in a hospital, smiling.", "source": "flickr"},
    {"key": "b", "caption": "Two men are cooking in a kitchen; his apron is white.", "source": "flickr"},
    {"key": "c", "caption": "An elderly man in a wheelchair reads in the park.", "source": "wikimedia"},
    {"key": "d", "caption": "A black dog on a white background.", "source": "wikimedia"},
    {"key": "e", "caption": "A black woman prays in a mosque.", "source": "wikimedia"},
]


def test_wordlists_are_versioned_and_documented() -> None:
    v = bias.versions()
    assert set(v) == set(bias.LISTS) and all(v.values())
    assert {"female", "male", "neutral"} <= set(bias.wordlist("gender").categories)
    assert ("black",) in bias.wordlist("ethnicity").person_only
    with pytest.raises(UsageError):
        bias.wordlist("nope")


def test_hits_and_caption_table() -> None:
    assert bias.hits("A woman works as a doctor.", "gender") == [("female", "woman")]
    assert bias.hits("A black dog on a white background.", "ethnicity") == []  # colours, not people
    assert bias.hits("A black woman prays.", "ethnicity") == [("ethnicity", "black")]
    assert ("mobility", "wheelchair") in bias.hits("a man in a wheelchair", "disability")
    assert bias.hits("a hearing aid", "disability") == [("sensory", "hearing aid")]
    t = bias.caption_table(ROWS).set_index("key")
    assert t.loc["a", "gender"] == "female" and t.loc["a", "occupations_terms"] == "doctor"
    assert t.loc["a", "settings"] == "workplace" and t.loc["b", "activities"] == "domestic"
    assert t.loc["c", "age"] == "adult;older" and t.loc["c", "disability"] == "mobility"
    assert t.loc["e", "religion"] == "muslim" and t.loc["e", "ethnicity"] == "ethnicity"
    assert t["person"].tolist() == [True, True, True, False, True]
    assert t.loc["b", "source"] == "flickr"


def test_frequencies_cooccurrence_intervals() -> None:
    t = bias.caption_table(ROWS)
    f = bias.frequencies(t, "gender").set_index("category")
    assert f.loc["male", "captions"] == 2 and f.loc["male", "of"] == 5
    assert f.loc["male", "ci_low"] < 0.4 < f.loc["male", "ci_high"]
    by = bias.frequencies(t, "gender", by="source").set_index(["source", "category"])
    assert by.loc[("wikimedia", "female"), "captions"] == 1 and by.loc[("flickr", "female"), "of"] == 2
    co = bias.cooccurrence(t, "gender", "occupations")
    assert co.loc["female", "doctor"] == 1
    assert bias.cooccurrence(t, "religion", "occupations").empty
    lo, hi = bias.wilson(0, 15)
    assert lo == 0.0 and 0.2 < hi < 0.25  # zero of 15 still allows ~20%
    lo, hi = bias.wilson(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert all(map(lambda x: x != x, bias.wilson(0, 0)))
    blo, bhi = bias.bootstrap_ci([0, 1] * 50, seed=1)
    assert blo < 0.5 < bhi and bhi - blo < 0.3
    with pytest.raises(UsageError):
        bias.frequencies(t, "nope")
    with pytest.raises(UsageError):
        bias.frequencies(t, "gender", by="nope")
    assert len(bias.frequency_figure(f.reset_index(), "gender").axes) == 1


def test_faces_on_real_photos(sample_dir: Path) -> None:
    from PIL import Image

    from gpic_lab.shards.reader import iter_samples, list_shards

    images = {s.key: Image.open(io.BytesIO(s.image)).convert("RGB")
              for s in iter_samples(list_shards([sample_dir / "train"]))}
    captions = {s.key: s.meta["caption"] for s in iter_samples(list_shards([sample_dir / "train"]), images=False)}
    astronaut = next(k for k, c in captions.items() if "woman" in c)
    cat = next(k for k, c in captions.items() if "cat" in c)
    boxes = bias.detect_faces(images)
    assert len(boxes[astronaut]) == 1 and boxes[cat] == []
    x, y, w, h = boxes[astronaut][0]
    assert 100 < x < 260 and 20 < y < 160 and 60 < w < 140  # the astronaut's face (512x512 photo)
    t = bias.caption_table([{"key": k, "caption": c} for k, c in captions.items()])
    table, per_key = bias.face_vs_mentions(t, bias.face_counts(images))
    assert per_key.set_index("key").loc[astronaut, "caption_mentions_person"]
    assert table["images"].sum() == len(images)
    assert len(bias.faces_figure(images, boxes).axes) == 1  # one image with a face


def test_eye_check_removes_texture_faces(sample_dir: Path) -> None:
    from gpic_lab.audits.hallucination import items_from_shards

    images = {it.key: it.image for it in items_from_shards([sample_dir / d for d in ("train", "val", "test")])}
    loose = bias.face_counts(images, verify_eyes=False)
    strict = bias.face_counts(images)
    assert sum(strict.values()) == 1 < sum(loose.values())  # only the astronaut keeps her face
    assert all(strict[k] <= loose[k] for k in images)
