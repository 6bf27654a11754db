"""FiftyOne bridge against a real MongoDB (FiftyOne's bundled mongod, data in a temp dir, stopped afterwards)."""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import ShardError, UsageError

pytestmark = pytest.mark.fiftyone

CLEAN = ["train", "val", "test"]


def _mongod_pids(db_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"mongod" in c for c in cmd[:1]) and str(db_dir).encode() in cmd:
                pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def fo_env(tmp_path_factory: pytest.TempPathFactory):
    """A private mongod for this module; FiftyOne is pointed at it before its first import."""
    from gpic_lab.fo import services as fo_services

    root = tmp_path_factory.mktemp("fo")
    saved = {k: os.environ.get(k) for k in ("FIFTYONE_DATABASE_URI", "FIFTYONE_CONFIG_DIR", "GPIC_LAB_STATE",
                                            "FIFTYONE_DO_NOT_TRACK", "FIFTYONE_SHOW_PROGRESS_BARS")}
    try:
        with fo_services.private_mongod(root / "db") as uri:
            os.environ.update(FIFTYONE_DATABASE_URI=uri, FIFTYONE_CONFIG_DIR=str(root / "config"),
                              GPIC_LAB_STATE=str(root / "state"), FIFTYONE_DO_NOT_TRACK="true",
                              FIFTYONE_SHOW_PROGRESS_BARS="false")
            import fiftyone as fo

            if fo.config.database_uri != uri:
                pytest.fail(f"fiftyone was imported earlier with database_uri={fo.config.database_uri!r}")
            assert _mongod_pids(root / "db"), "the private mongod is not running"
            yield root
            import fiftyone.core.odm.database as fodb

            fodb._disconnect() if hasattr(fodb, "_disconnect") else None
    finally:  # restore even when setup fails: later tests must not inherit a dead mongod's URI
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not _mongod_pids(root / "db"), "mongod left running after the tests"


def _ground_truth(sample_dir: Path) -> list[dict[str, str]]:
    with open(sample_dir / "ground_truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _write_decisions(path: Path, stage: str, keys: list[str], dropped: dict[str, str]) -> Path:
    import pandas as pd

    path.mkdir(parents=True, exist_ok=True)
    rows = [{"key": k, "shard": "", "stage": stage, "keep": k not in dropped, "reason": dropped.get(k),
             "license": "", "license_family": "", "source": "", "score_x": float(i)} for i, k in enumerate(keys)]
    pd.DataFrame(rows).to_parquet(path / "decisions.parquet")
    return path


def _all_keys(sample_dir: Path) -> list[str]:
    from gpic_lab.shards.reader import iter_samples, list_shards

    return [s.key for s in iter_samples(list_shards([sample_dir / d for d in [*CLEAN, "raw"]]), images=False)]


def test_load_is_complete_idempotent_and_refreshes(fo_env: Path, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.fo import bridge as fo_bridge

    keys = _all_keys(sample_dir)
    truth = _ground_truth(sample_dir)
    lic_drop = {r["key"]: r["label"] for r in truth if r["kind"] == "license"}
    dec = _write_decisions(tmp_path / "license", "license", keys, lic_drop)
    paths = [sample_dir / d for d in [*CLEAN, "raw"]]
    ds = fo_bridge.load_dataset(paths, "t_full", decisions_dirs=[dec])
    assert len(ds) == len(set(keys)) == len(keys)
    schema = ds.get_field_schema()
    for field in ("key", "shard", "source", "license", "license_family", "spdx", "permissive", "attribution",
                  "caption", "caption_type", "split", "width", "height", "caption_words", "qc_flags",
                  "dec_license", "license_score_x", "dropped", "drop_reasons"):
        assert field in schema, field
    bad = next(iter(lic_drop))
    sample = ds.match({"key": bad}).first()
    assert sample.dec_license == lic_drop[bad] and sample.dropped
    assert f"dropped:license:{lic_drop[bad]}" in sample.tags
    # media: content-addressed under the state dir, bytes equal to the key's image (GPIC key = sha256 of image)
    media = Path(sample.filepath)
    assert media.is_relative_to(fo_env / "state")
    assert media.stem == hashlib.sha256(media.read_bytes()).hexdigest() == bad
    assert len(ds.match({"dropped": True})) == len(lic_drop)
    # re-run: no duplicates; a changed decision is refreshed in place
    lic_drop2 = dict(list(lic_drop.items())[:2])
    dec2 = _write_decisions(tmp_path / "license2", "license", keys, lic_drop2)
    ds = fo_bridge.load_dataset(paths, "t_full", decisions_dirs=[dec2])
    assert len(ds) == len(keys) and len(ds.distinct("key")) == len(keys)
    assert len(ds.match({"dropped": True})) == 2
    assert ds.match({"key": list(lic_drop)[-1]}).first().dec_license == "keep"


def test_selection_tier_range_sample_dropped(fo_env: Path, sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.fo import bridge as fo_bridge

    train = [sample_dir / "train"]
    ds = fo_bridge.load_dataset(train, "t_tier", tier="nano")
    assert len(ds) > 0 and all("nano" in s for s in ds.values("split"))
    one = fo_bridge.load_dataset(train, "t_range", shard_range=(0, 1))
    assert set(Path(s).name for s in one.values("shard")) == {"gpic_train_00000.tar"}
    paths = [sample_dir / d for d in [*CLEAN, "raw"]]
    a = fo_bridge.load_dataset(paths, "t_s1", sample=5, seed=3).values("key")
    b = fo_bridge.load_dataset(paths, "t_s2", sample=5, seed=3).values("key")
    c = fo_bridge.load_dataset(paths, "t_s3", sample=5, seed=4).values("key")
    assert len(a) == 5 and sorted(a) == sorted(b) and sorted(a) != sorted(c)
    keys = _all_keys(sample_dir)
    dec = _write_decisions(tmp_path / "qc", "caption-qc", keys, {keys[0]: "not-visible", keys[1]: "length"})
    dropped = fo_bridge.load_dataset(paths, "t_dropped", decisions_dirs=[dec], dropped_only=True)
    assert sorted(dropped.values("key")) == sorted(keys[:2])
    assert dropped.match({"key": keys[0]}).first().dec_caption_qc == "not-visible"
    with pytest.raises(UsageError):
        fo_bridge.load_dataset(train, "t_bad", dropped_only=True)
    with pytest.raises(UsageError):
        fo_bridge.load_dataset(train, "bad name!")
    with pytest.raises(UsageError):
        fo_bridge.load_dataset(train, "t_r", shard_range=(5, 9))
    with pytest.raises(ShardError, match="bad-json"):  # broken shards fail loudly, naming shard and member
        fo_bridge.load_dataset([sample_dir / "broken"], "t_broken")


def test_embeddings_brain_and_views(fo_env: Path, sample_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo.records import histogram_encoder

    ds = fo_bridge.load_dataset([sample_dir / d for d in [*CLEAN, "raw"]], "t_brain")
    assert fo_bridge.attach_embeddings(ds, histogram_encoder()) == len(ds)
    out = fo_bridge.compute_brain(ds, method="pca", near_dup_threshold=0.1)
    assert len(out["points"]) == len(ds) and np.isfinite(out["points"][["x", "y"]].to_numpy()).all()
    assert {"viz", "sim"} <= set(ds.list_brain_runs())
    assert all(u is not None for u in ds.values("uniqueness"))
    of = dict(zip(ds.values("key"), ds.values("near_dup_of"), strict=True))
    truth = _ground_truth(sample_dir)
    for row in truth:  # exact-pixel-preserving copies must land in their original's group
        if row["kind"] == "near-dup" and row["label"] in ("recompressed", "png"):
            orig = row["detail"].removeprefix("of:")
            assert of[row["key"]] is not None and of[row["key"]] == of[orig], row
    views = fo_bridge.save_views(ds)
    for name in ("by_license_family", "non_permissive_leaks", "dropped_by_reason", "near_duplicate_clusters",
                 "not_visible_captions", "caption_qc_failures", "tier_nano", "tier_lite", "tier_full"):
        assert name in ds.list_saved_views(), name
    assert views["near_duplicate_clusters"] >= 2 and views["by_license_family"] == len(ds)
    nv = ds.load_saved_view("not_visible_captions")
    assert "8d9fb6bedd87" in "".join(nv.values("key"))
    # embeddings from a file by key
    keys = ds.values("key")
    np.savez(tmp_path / "emb.npz", keys=np.array(keys[:4]), embeddings=np.eye(4, 8, dtype=np.float32))
    assert fo_bridge.attach_embeddings(ds, tmp_path / "emb.npz", field="file_emb") == 4
    # audit scores by key -> fields and the worst-hallucination view
    halluc = {r["key"]: {"hallucination_rate": 1.0, "hallucinated_objects": r["detail"]}
              for r in truth if r["kind"] == "hallucination"}
    halluc["not-a-key"] = {"hallucination_rate": 0.5}
    halluc[keys[0]] = {"hallucination_rate": 0.0, "hallucinated_objects": None}
    assert fo_bridge.attach_audit(ds, "caption", halluc) == 4
    views = fo_bridge.save_views(ds)
    worst = ds.load_saved_view("worst_hallucination_captions")
    assert views["worst_hallucination_captions"] == 4 and worst.first()["caption_hallucination_rate"] == 1.0
    assert set(worst.values("key")[:3]) == {r["key"] for r in truth if r["kind"] == "hallucination"}
    assert fo_bridge.attach_audit(ds, "caption", halluc) == 4 and len(ds) == len(keys)  # idempotent


def test_cli_load_and_bad_input(fo_env: Path, sample_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main

    assert main(["fiftyone", "load", str(sample_dir / "val"), "--name", "t_cli"]) == 0
    assert '"samples": ' in capsys.readouterr().out
    assert main(["fiftyone", "load", str(sample_dir / "nope"), "--name", "t_cli"]) == 2
    assert main(["fiftyone", "load", str(sample_dir / "val"), "--name", "t_cli", "--shards", "x"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert main(["fiftyone", "list"]) == 0 and "t_cli" in capsys.readouterr().out
    assert main(["fiftyone", "delete", "t_cli"]) == 0
    assert main(["fiftyone", "delete", "t_cli"]) == 2
    assert sys.modules.get("fiftyone") is not None


def test_bulk_insert_matches_fiftyone_add_samples(fo_env: Path, sample_dir: Path) -> None:
    from gpic_lab.fo import bridge as fo_bridge
    from gpic_lab.fo.records import Selection, StageDecisions, build_row, materialise, select

    index, chosen = select([sample_dir / "train", sample_dir / "raw"], Selection())
    rows = [build_row(index.get(s.key), materialise(index.get(s.key), fo_env / "media"), StageDecisions())
            for s in chosen]
    fields = fo_bridge._schema_for(rows, StageDecisions())
    fast, ref = fo_bridge.open_dataset("t_fast", overwrite=True), fo_bridge.open_dataset("t_ref", overwrite=True)
    fo_bridge.declare_schema(fast, fields)
    fo_bridge.declare_schema(ref, fields)
    fo_bridge._add_rows(fast, rows, 7)  # several batches
    fo_bridge.add_samples_batched(ref, rows, 7)
    assert len(fast) == len(ref) == len(rows)
    for field in ["filepath", "tags", *fields]:
        assert fast.sort_by("key").values(field) == ref.sort_by("key").values(field), field
    first = fast.first()
    assert first.media_type == "image" and first.created_at is not None and first.key == rows[0]["key"]
    with pytest.raises(Exception, match="duplicate key"):  # the unique key index rejects a second insert
        fo_bridge._add_rows(fast, rows[:1], 7)


def test_fiftyone_imports_after_dask() -> None:
    """The stage engine imports dask.distributed; FiftyOne must still import in the same process afterwards."""
    import subprocess

    code = "import distributed, eta.constants, fiftyone; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FIFTYONE_DATABASE_URI": "mongodb://127.0.0.1:9"})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_bad_embeddings_and_decisions_files_are_one_line_errors(tmp_path: Path) -> None:
    """No MongoDB needed: the file readers reject junk with a UsageError naming the file."""
    import numpy as np

    from gpic_lab.fo.records import load_decisions, load_embeddings

    (tmp_path / "junk.npz").write_bytes(b"junk")
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    np.savez(tmp_path / "short.npz", keys=np.array(["a", "b"]), embeddings=np.zeros((3, 4)))
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "decisions.parquet").write_bytes(b"junk")
    for name, match in (("junk.npz", "not a readable npz"), ("junk.parquet", "not a readable parquet"),
                        ("short.npz", "2 keys but 3 embeddings")):
        with pytest.raises(UsageError, match=f"{name}: {match}"):
            load_embeddings(tmp_path / name)
    with pytest.raises(UsageError, match="decisions.parquet: not a readable parquet"):
        load_decisions([tmp_path / "stage"])
    from gpic_lab.fo.records import resolve_inputs

    with pytest.raises(UsageError, match="junk.parquet: not a catalog parquet"):
        resolve_inputs([tmp_path / "junk.parquet"])
