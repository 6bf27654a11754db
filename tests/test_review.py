"""The review loop: FiftyOne sample tags and review-table verdicts -> `review export` -> `pack` drops exactly them.

The round trip uses the real FiftyOne against its bundled mongod (private, in a temp dir, stopped afterwards).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError

CLEAN = ("train", "val", "test")


@pytest.fixture(scope="module")
def fo_env(tmp_path_factory: pytest.TempPathFactory):
    """A private mongod for this module; FiftyOne is pointed at it before its first import."""
    from gpic_lab.fo import services as fo_services

    root = tmp_path_factory.mktemp("fo_review")
    names = ("FIFTYONE_DATABASE_URI", "FIFTYONE_CONFIG_DIR", "GPIC_LAB_STATE", "FIFTYONE_DO_NOT_TRACK",
             "FIFTYONE_SHOW_PROGRESS_BARS")
    saved = {k: os.environ.get(k) for k in names}
    try:
        with fo_services.private_mongod(root / "db") as uri:
            os.environ.update(FIFTYONE_DATABASE_URI=uri, FIFTYONE_CONFIG_DIR=str(root / "config"),
                              GPIC_LAB_STATE=str(root / "state"), FIFTYONE_DO_NOT_TRACK="true",
                              FIFTYONE_SHOW_PROGRESS_BARS="false")
            import fiftyone as fo

            if fo.config.database_uri != uri:
                pytest.skip(f"fiftyone was imported earlier with database_uri={fo.config.database_uri!r}")
            yield root
            import fiftyone.core.odm.database as fodb

            fodb._disconnect() if hasattr(fodb, "_disconnect") else None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _packed_keys(out: Path) -> set[str]:
    from gpic_lab.shards.reader import iter_samples, list_shards

    return {s.key for s in iter_samples(list_shards([out / d for d in CLEAN]), images=False)}


@pytest.mark.fiftyone
def test_tags_export_and_pack_drop_exactly_the_tagged_keys(fo_env: Path, sample_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main
    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo import review as fo_review
    from gpic_lab.pack.packer import pack

    sources = [sample_dir / d for d in CLEAN]
    dataset = fo_bridge.load_dataset(sources, "t_review")
    keys = sorted(dataset.values("key"))
    rejected, recaption, kept, other = keys[:2], keys[2:4], keys[4:5], keys[5:6]
    assert fo_review.tag_keys(dataset, rejected, "reject") == 2
    assert fo_review.tag_keys(dataset, recaption, "recaption") == 2
    fo_review.tag_keys(dataset, kept, "keep")
    fo_review.tag_keys(dataset, other, "interesting")  # not a review tag: no decision
    fo_review.tag_keys(dataset, rejected[:1], "keep")  # a key tagged twice: the most severe tag wins

    out = tmp_path / "review"
    assert main(["review", "export", "t_review", "--out", str(out), "--reviewer", "alice"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == 5 and summary["dropped"] == 4 and summary["recaption"] == 2

    import pandas as pd

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
def test_export_adds_verdicts_and_refuses_nothing_to_export(fo_env: Path, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.audits.review import ReviewTable
    from gpic_lab.commands.cli import main
    from gpic_lab.fo import bridge as fo_bridge

    dataset = fo_bridge.load_dataset([sample_dir / "val"], "t_review_v")
    keys = sorted(dataset.values("key"))
    assert main(["review", "export", "t_review_v", "--out", str(tmp_path / "none")]) == 2  # nothing tagged yet
    assert main(["review", "export", "no_such_dataset", "--out", str(tmp_path / "none")]) == 2
    table = ReviewTable([{"id": f"{keys[0]}:short"}, {"id": f"{keys[1]}:long"}], tmp_path / "verdicts.json",
                        reviewer="bob")
    table.set_verdict(f"{keys[0]}:short", "hallucinated", "no dog")
    table.set_verdict(f"{keys[1]}:long", "other-problem")
    assert main(["review", "export", "t_review_v", "--out", str(tmp_path / "v"),
                 "--verdicts", str(tmp_path / "verdicts.json")]) == 0
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "v" / "decisions.parquet").set_index("key")
    assert frame.loc[keys[0], "reason"] == "review:recaption" and frame.loc[keys[0], "caption_type"] == "short"
    assert frame.loc[keys[0], "reviewed_by"] == "bob" and frame.loc[keys[0], "detail"] == "no dog"
    assert frame.loc[keys[1], "reason"] == "review:reject"
    assert set(frame["review_source"]) == {"review-table:verdicts.json"}


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


@pytest.mark.fiftyone
@pytest.mark.browser
def test_app_shows_each_saved_view_and_keys_view(fo_env: Path, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo import browser as fo_browser
    from gpic_lab.fo import review as fo_review
    from gpic_lab.fo.services import free_port

    if fo_browser.chromium() is None:
        pytest.skip("chromium not installed")
    dataset = fo_bridge.load_dataset([sample_dir / "val", sample_dir / "test"], "t_review_app")
    keys = sorted(dataset.values("key"))
    assert fo_review.save_keys_view(dataset, "picked", [keys[2], keys[0], "not-a-key"]) == 2
    assert dataset.load_saved_view("picked").values("key") == [keys[2], keys[0]]  # in the order given
    with pytest.raises(UsageError):
        fo_review.save_keys_view(dataset, "empty", [])
    app = fo_bridge.launch_app("t_review_app", port=free_port())
    try:
        shots = fo_review.show_views(app, dataset, names=["picked"], shots_dir=tmp_path)
        assert app.session.view is not None and app.session.view.values("key") == [keys[2], keys[0]]
        assert Path(shots["picked"]).stat().st_size > 20_000
        text = fo_browser.visible_text(fo_browser.dump_dom(app.url))
        assert "picked" in text and "2 samples" in text  # the App shows the saved view set by session.view
        assert fo_review.view_url(dataset, app.url, "picked").endswith("?view=picked")
    finally:
        app.close()
