"""pack refuses what would ship the wrong samples or destroy files: malformed decision tables (exit 2 before any
shard is written), decisions that match no sample (exit 2) or only some (a loud warning), output directories it
does not own, outputs inside its inputs, non-finite --val/--test; a killed pack's temp files are removed by the
rerun, and only shards an earlier manifest lists are ever deleted. catalog refuses to write over an input."""

from __future__ import annotations

import json
from pathlib import Path

import crafted
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_pack import _pool

from gpic_lab.shards.reader import iter_samples

cli = crafted.cli


def _keys(src: Path) -> list[str]:
    return [s.key for s in iter_samples(src, images=False)]


def _table(path: Path, columns: dict[str, pa.Array]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _pack(src: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return cli(["pack", str(src), *extra, "--out", str(out), "--shards", "1", "--no-validate"])


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return _pool(tmp_path, 1, 12)


@pytest.mark.parametrize("bad", ["keep-strings", "keep-null", "key-binary", "stage-null", "stage-empty",
                                 "reason-number"])
def test_malformed_decisions_are_usage_errors_before_any_shard(tmp_path: Path, pool: Path, bad: str) -> None:
    keys = _keys(pool)[:4]
    cols = {"key": pa.array(keys), "stage": pa.array(["license"] * 4), "keep": pa.array([False] * 4),
            "reason": pa.array(["non-permissive"] * 4)}
    cols.update({"keep-strings": {"keep": pa.array(["False"] * 4)},
                 "keep-null": {"keep": pa.array([False, None, False, False], pa.bool_())},
                 "key-binary": {"key": pa.array([k.encode() for k in keys], pa.binary())},
                 "stage-null": {"stage": pa.array(["license", None, "license", "license"])},
                 "stage-empty": {"stage": pa.array([""] * 4)},
                 "reason-number": {"reason": pa.array([1, 2, 3, 4])}}[bad])
    dec = _table(tmp_path / "dec" / "decisions.parquet", cols)
    out = tmp_path / "out"
    rc, _, err = _pack(pool, out, str(dec.parent))
    assert rc == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("gpic-lab pack: error: ") and "decisions.parquet" in line and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_decisions_matching_no_sample_fail_and_partial_matches_warn(tmp_path: Path, pool: Path) -> None:
    keys = _keys(pool)
    upper = _table(tmp_path / "up" / "decisions.parquet", {
        "key": pa.array([k.upper() for k in keys[:3]]), "stage": pa.array(["license"] * 3),
        "keep": pa.array([False] * 3), "reason": pa.array(["non-permissive"] * 3)})
    rc, _, err = _pack(pool, tmp_path / "o1", str(upper.parent))
    assert rc == 2 and "match none of" in err and "case" in err and not (tmp_path / "o1").exists()
    partial = _table(tmp_path / "part" / "decisions.parquet", {
        "key": pa.array(keys[:2] + ["f" * 64]), "stage": pa.array(["license"] * 3),
        "keep": pa.array([False] * 3), "reason": pa.array(["non-permissive"] * 3)})
    rc, _, err = _pack(pool, tmp_path / "o2", str(partial.parent))
    assert rc == 0 and "warning" in err and "1 of 3" in err
    assert len(_keys(tmp_path / "o2")) == len(keys) - 2


def test_string_keep_column_no_longer_ships_dropped_samples(tmp_path: Path, pool: Path) -> None:
    keys = _keys(pool)
    dec = tmp_path / "lic" / "decisions.parquet"
    dec.parent.mkdir()
    pd.DataFrame({"key": keys, "stage": "license", "keep": ["False"] * len(keys), "reason": "non-permissive"}) \
        .to_parquet(dec)
    rc, _, err = _pack(pool, tmp_path / "out", str(dec.parent))
    assert rc == 2 and "keep" in err


@pytest.mark.parametrize("flag", ["--val", "--test"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_split_sizes_are_usage_errors(tmp_path: Path, pool: Path, flag: str, value: str) -> None:
    rc, _, err = _pack(pool, tmp_path / "out", f"{flag}={value}")
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1


def test_pack_refuses_a_directory_it_does_not_own(tmp_path: Path, pool: Path) -> None:
    foreign = tmp_path / "mine" / "train" / "gpic_train_00000.tar"
    crafted.good_shard(foreign)
    before = foreign.read_bytes()
    rc, _, err = _pack(pool, tmp_path / "mine")
    assert rc == 2 and "manifest.json" in err and foreign.read_bytes() == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("keep me")
    rc, _, err = _pack(pool, tmp_path / "notes")
    assert rc == 2 and (tmp_path / "notes" / "README.txt").read_text() == "keep me"


def test_pack_removes_only_shards_its_earlier_manifest_lists(tmp_path: Path, pool: Path) -> None:
    out = tmp_path / "out"
    assert cli(["pack", str(pool), "--out", str(out), "--shards", "3", "--no-validate"])[0] == 0
    listed = {e["file"] for e in json.loads((out / "manifest.json").read_text())["shards"]}
    assert len(listed) == 3
    assert cli(["pack", str(pool), "--out", str(out), "--shards", "2", "--no-validate"])[0] == 0
    assert not (out / "train" / "gpic_train_00002.tar").exists()  # listed earlier, not rewritten: removed
    foreign = out / "train" / "gpic_train_00007.tar"
    crafted.good_shard(foreign)
    rc, _, err = cli(["pack", str(pool), "--out", str(out), "--shards", "1", "--no-validate"])
    assert rc == 2 and "gpic_train_00007.tar" in err and foreign.exists()
    assert (out / "train" / "gpic_train_00001.tar").exists()  # nothing touched by the refused run


def test_pack_with_out_inside_its_source_directory_is_refused(tmp_path: Path, pool: Path) -> None:
    before = sorted(p.name for p in pool.iterdir())
    rc, _, err = _pack(pool, pool / "packed")
    assert rc == 2 and "inside" in err and sorted(p.name for p in pool.iterdir()) == before


def test_rerun_removes_temp_files_a_killed_pack_left(tmp_path: Path, pool: Path) -> None:
    out = tmp_path / "out"
    assert _pack(pool, out)[0] == 0
    stale = [out / "train" / ".gpic_train_00000.tar.abc123.tmp", out / ".manifest.json.x1y2.tmp",
             out / "val" / ".gpic_val_00000.tar.q.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"partial")
    assert _pack(pool, out)[0] == 0
    assert not any(p.exists() for p in stale) and not list(out.rglob("*.tmp"))


def test_catalog_refuses_to_write_over_an_input(tmp_path: Path, pool: Path) -> None:
    shard = sorted(pool.glob("*.tar"))[0]
    before = shard.read_bytes()
    for mode in ("fail", "quarantine"):
        rc, _, err = cli(["catalog", str(shard), "-o", str(shard), "--on-error", mode, "--workers", "1"])
        assert rc == 2 and "input" in err and shard.read_bytes() == before
    other = tmp_path / "other.tar"
    other.write_bytes(before)
    rc, _, err = cli(["catalog", str(shard), "-o", str(other), "--workers", "1"])
    assert rc == 2 and "not a Parquet file" in err and other.read_bytes() == before


def test_a_pack_killed_before_its_manifest_resumes(tmp_path: Path, pool: Path, monkeypatch) -> None:
    import gpic_lab.pack.manifest as manifest_mod

    clean = tmp_path / "clean"
    assert _pack(pool, clean)[0] == 0
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(manifest_mod, "write_outputs", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        assert _pack(pool, out)[0] == 130  # shards written, no manifest: as if killed there
    assert list(out.rglob("*.tar")) and not (out / "manifest.json").exists()
    assert _pack(pool, out)[0] == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (clean / f).read_bytes() for f in files)


@pytest.mark.parametrize("manifest", [
    "[" * 100_000, b"\xff\xfe not utf-8", {"shards": "x"},
    {"shards": [{"file": "train/a.tar", "bytes": "12", "sha256": "0" * 64}]},
    {"shards": [{"file": ["train/a.tar"], "bytes": 12, "sha256": "0" * 64}]},
    {"shards": [{"file": "train/a.tar", "bytes": 12, "sha256": 7}]},
    {"shards": [{"file": "train/a.tar", "bytes": -1, "sha256": "0" * 64}]},
    {"shards": [{"file": "train/a.tar", "bytes": True, "sha256": "0" * 64}]},
], ids=["deep", "not-utf8", "shards-str", "bytes-str", "file-list", "sha-int", "bytes-negative", "bytes-bool"])
def test_verify_on_a_malformed_manifest_is_one_line_exit_2(tmp_path: Path, manifest: object) -> None:
    from gpic_lab.pack.manifest import FORMAT

    path = tmp_path / "manifest.json"
    if isinstance(manifest, dict):
        path.write_text(json.dumps({"format": FORMAT, **manifest}))
    else:
        path.write_bytes(manifest if isinstance(manifest, bytes) else manifest.encode())
    rc, _, err = cli(["verify", str(path)])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("gpic-lab verify: error: ")


def test_verify_on_an_unreadable_manifest_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").mkdir()
    rc, _, err = cli(["verify", str(tmp_path / "manifest.json")])
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_a_partial_match_warns_at_the_callers_line(tmp_path: Path, pool: Path) -> None:
    """From Python (a notebook) the warning names the caller's own line, not one inside the package."""
    import warnings

    from gpic_lab.pack.inputs import DecisionsWarning
    from gpic_lab.pack.packer import pack

    keys = _keys(pool)
    partial = _table(tmp_path / "part" / "decisions.parquet", {
        "key": pa.array(keys[:1] + ["e" * 64]), "stage": pa.array(["license"] * 2),
        "keep": pa.array([False] * 2), "reason": pa.array(["non-permissive"] * 2)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pack([str(pool), str(partial.parent)], tmp_path / "o", 2, 0, 0)
    (w,) = [w for w in caught if issubclass(w.category, DecisionsWarning)]
    assert w.filename == __file__ and "1 of 2" in str(w.message)
