"""The review loop: FiftyOne sample tags and review-table verdicts -> `review export` -> `pack` drops exactly them.

FiftyOne runs for real against its bundled mongod (private, in a temp dir, stopped afterwards), in `gpic-lab` and
`python` subprocesses: a process configures FiftyOne's database once, so this module never imports fiftyone itself
(tests/test_fo_bridge.py does, in the same pytest process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError

CLEAN = ("train", "val", "test")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fo_env(tmp_path_factory: pytest.TempPathFactory):
    """Environment for subprocesses that use a private mongod of this module."""
    from gpic_lab.fo import services as fo_services

    root = tmp_path_factory.mktemp("fo_review")
    with fo_services.private_mongod(root / "db") as uri:
        yield {**os.environ, "FIFTYONE_DATABASE_URI": uri, "FIFTYONE_CONFIG_DIR": str(root / "config"),
               "GPIC_LAB_STATE": str(root / "state"), "FIFTYONE_DO_NOT_TRACK": "true",
               "FIFTYONE_SHOW_PROGRESS_BARS": "false", "PYTHONPATH": str(ROOT)}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _python(env: dict, code: str) -> object:
    """Run ``code`` in a fresh interpreter; it prints one JSON value last."""
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


TAG = """
import json
from gpic_lab.fo import bridge, review
ds = bridge.open_dataset({name!r})
keys = sorted(ds.values("key"))
for tag, picked in {plan!r}.items():
    review.tag_keys(ds, [keys[i] for i in picked], tag)  # what selecting samples and tagging them in the App does
print(json.dumps(keys))
"""


def _packed_keys(out: Path) -> set[str]:
    from gpic_lab.shards.reader import iter_samples, list_shards

    return {s.key for s in iter_samples(list_shards([out / d for d in CLEAN]), images=False)}


@pytest.mark.fiftyone
def test_tags_export_and_pack_drop_exactly_the_tagged_keys(fo_env: dict, sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.pack.packer import pack

    sources = [sample_dir / d for d in CLEAN]
    load = _cli(fo_env, "fiftyone", "load", *map(str, sources), "--name", "t_review")
    assert load.returncode == 0, load.stderr[-2000:]
    # a key tagged twice (keep + reject): the most severe tag wins; "interesting" is not a review tag
    plan = {"reject": [0, 1], "recaption": [2, 3], "keep": [4, 0], "interesting": [5]}
    keys = _python(fo_env, TAG.format(name="t_review", plan=plan))
    rejected, recaption, kept = keys[:2], keys[2:4], keys[4:5]

    out = tmp_path / "review"
    done = _cli(fo_env, "review", "export", "t_review", "--out", str(out), "--reviewer", "alice")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["samples"] == 5 and summary["dropped"] == 4 and summary["recaption"] == 2

    table = pd.read_parquet(out / "decisions.parquet").set_index("key")
    assert sorted(table.index) == sorted(rejected + recaption + kept)
    assert set(table["stage"]) == {"review"} and table["keep"].dtype == bool
    assert (table.loc[rejected, "reason"] == "review:reject").all()
    assert (table.loc[recaption, "reason"] == "review:recaption").all()
    assert table.loc[kept, "keep"].all() and table.loc[kept, "reason"].isna().all()
    assert table.loc[rejected[0], "review_tags"] == "keep;reject"
    assert (table["reviewed_by"] == "alice").all() and table["reviewed_at"].str.match(r"\d{4}-\d\d-\d\dT").all()
    assert set(table["review_source"]) == {"fiftyone:t_review"}
    # what `caption --redo` reads from the recaption rows: the key, its shard, the level and the reason
    redo = table[~table["keep"] & (table["review_action"] == "recaption")]
    assert sorted(redo.index) == sorted(recaption)
    assert redo["caption_type"].isin(["tag", "short", "medium", "long"]).all() and redo["shard"].str.endswith(".tar").all()
    assert {"reasons", "detail"} <= set(table.columns)
    for name in ("counts.csv", "reasons.csv", "summary.json"):
        assert (out / name).is_file(), name

    manifest = pack([*sources, out], tmp_path / "packed", n_shards=2, n_val=2, n_test=2)
    assert _packed_keys(tmp_path / "packed") == set(keys) - set(rejected) - set(recaption)
    sheet = json.loads((tmp_path / "packed" / "datasheet.json").read_text())
    assert sheet["drops"]["review"] == {"review:recaption": 2, "review:reject": 2}
    assert sum(s["samples"] for s in manifest["splits"].values()) == len(keys) - 4


@pytest.mark.fiftyone
def test_export_adds_verdicts_and_refuses_nothing_to_export(fo_env: dict, sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.audits.review import ReviewTable

    assert _cli(fo_env, "fiftyone", "load", str(sample_dir / "val"), "--name", "t_review_v").returncode == 0
    keys = _python(fo_env, TAG.format(name="t_review_v", plan={}))
    nothing = _cli(fo_env, "review", "export", "t_review_v", "--out", str(tmp_path / "none"))
    assert nothing.returncode == 2 and "no sample carries a review tag" in nothing.stderr  # nothing tagged yet
    unknown = _cli(fo_env, "review", "export", "no_such_dataset", "--out", str(tmp_path / "none"))
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    table = ReviewTable([{"id": f"{keys[0]}:short"}, {"id": f"{keys[1]}:long"}], tmp_path / "verdicts.json",
                        reviewer="bob")
    table.set_verdict(f"{keys[0]}:short", "hallucinated", "no dog")
    table.set_verdict(f"{keys[1]}:long", "other-problem")
    done = _cli(fo_env, "review", "export", "t_review_v", "--out", str(tmp_path / "v"), "--verdicts",
                str(tmp_path / "verdicts.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    frame = pd.read_parquet(tmp_path / "v" / "decisions.parquet").set_index("key")
    assert frame.loc[keys[0], "reason"] == "review:recaption" and frame.loc[keys[0], "caption_type"] == "short"
    assert frame.loc[keys[0], "reviewed_by"] == "bob" and frame.loc[keys[0], "detail"] == "no dog"
    assert frame.loc[keys[1], "reason"] == "review:reject"
    assert set(frame["review_source"]) == {"review-table:verdicts.json"}
    only = _cli(fo_env, "review", "export", "-", "--out", str(tmp_path / "v2"), "--verdicts",
                str(tmp_path / "verdicts.json"))
    assert only.returncode == 0 and json.loads(only.stdout.strip().splitlines()[-1])["samples"] == 2


def test_review_frame_rules_and_tag_parsing() -> None:
    from gpic_lab.engine.review import Mark, parse_tags, review_frame

    assert parse_tags(None) == {"reject": "drop", "recaption": "recaption", "keep": "keep"}
    assert parse_tags("nsfw=drop,recaption") == {"nsfw": "drop", "recaption": "recaption"}
    for bad in ("nsfw=delete", "a b=drop", "=drop"):
        with pytest.raises(UsageError):
            parse_tags(bad)
    marks = [Mark("k1", "keep", "s", reviewed_at="2026-01-02T00:00:00+00:00"),
             Mark("k1", "recaption", "s", reviewed_at="2026-01-01T00:00:00+00:00", caption_type="long"),
             Mark("k2", "nsfw", "s", meta={"license": "CC BY 2.0", "attribution": "x via Flickr"}),
             Mark("k3", "unknown-tag", "s")]
    frame = review_frame(marks, "nsfw=drop,recaption,keep").set_index("key")
    assert list(frame.index) == ["k1", "k2"]
    assert frame.loc["k1", "reason"] == "review:recaption" and frame.loc["k1", "caption_type"] == "long"
    assert frame.loc["k2", "reason"] == "review:nsfw" and frame.loc["k2", "review_action"] == "drop"
    assert frame.loc["k2", "source"] == "flickr" and frame.loc["k2", "license_family"] == "CC-BY"


def test_review_table_notes_commit_once(tmp_path: Path) -> None:
    from gpic_lab.audits.review import ReviewTable, verdict_marks

    path = tmp_path / "verdicts.json"
    table = ReviewTable([{"id": "k1:tag", "caption": "dog"}], path, reviewer="carol")
    box = table.widget()
    pick, note = box.children[1].children[2].children
    assert note.continuous_update is False  # the browser sends the note on Enter / blur, not per keystroke
    writes = []
    original = table.save
    table.save = lambda: writes.append(1) or original()  # count the file writes
    note.value = "a dog, not a cat"  # one committed edit
    assert len(writes) == 1 and json.loads(path.read_text())["k1:tag"]["note"] == "a dog, not a cat"
    pick.value = "wrong-count"
    (mark,) = verdict_marks(path)
    assert (mark.key, mark.tag, mark.caption_type, mark.reviewed_by) == ("k1", "recaption", "tag", "carol")


APP = """
import json, sys
from pathlib import Path
from gpic_lab.errors import UsageError
from gpic_lab.fo import bridge, browser, review
from gpic_lab.fo.services import free_port
ds = bridge.load_dataset([Path({val!r}), Path({test!r})], "t_review_app")
keys = sorted(ds.values("key"))
out = {{"saved": review.save_keys_view(ds, "picked", [keys[2], keys[0], "not-a-key"]),
       "order": ds.load_saved_view("picked").values("key") == [keys[2], keys[0]]}}
try:
    review.save_keys_view(ds, "empty", [])
except UsageError:
    out["empty_refused"] = True
app = bridge.launch_app("t_review_app", port=free_port())
try:
    shots = review.show_views(app, ds, names=["picked"], shots_dir=Path({shots!r}))
    out["session_view"] = app.session.view.values("key") == [keys[2], keys[0]]
    out["shot_bytes"] = Path(shots["picked"]).stat().st_size
    out["text"] = browser.visible_text(browser.dump_dom(app.url))
    out["url"] = review.view_url(ds, app.url, "picked")
finally:
    app.close()
print(json.dumps(out))
"""


@pytest.mark.fiftyone
@pytest.mark.browser
def test_app_shows_each_saved_view_and_keys_view(fo_env: dict, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.fo.browser import chromium

    if chromium() is None:
        pytest.skip("chromium not installed")
    got = _python(fo_env, APP.format(val=str(sample_dir / "val"), test=str(sample_dir / "test"), shots=str(tmp_path)))
    assert got["saved"] == 2 and got["order"] and got["empty_refused"]  # keys in the order given, unknown skipped
    assert got["session_view"] and got["shot_bytes"] > 20_000
    assert "picked" in got["text"] and "2 samples" in got["text"]  # the App shows the view set by session.view
    assert got["url"].endswith("?view=picked")
