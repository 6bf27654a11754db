"""pack / manifest / verify: byte-identical reproducibility, decisions applied, stratified splits, tiers,
validate-clean output, verify names missing and corrupt shards (library and CLI)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import file_tree

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.pack import packer as pack
from gpic_lab.pack.manifest import sha256_file, verify
from gpic_lab.shards.reader import iter_samples


def _pool(tmp_path: Path, n_shards: int = 3, per_shard: int = 40) -> Path:
    """Valid shards with a known source and caption-type mix (1/45/45/9-ish; flickr vs wikimedia 3:1)."""
    import hashlib

    from conftest import make_image

    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import write_shard

    src = tmp_path / "pool"
    types = ["short"] * 9 + ["medium"] * 9 + ["long"] * 2
    for s in range(n_shards):
        samples = []
        for i in range(per_shard):
            seed = s * 1000 + i
            data = make_image(seed, 48 + i % 7, 40)
            key = hashlib.sha256(data).hexdigest()
            flickr = i % 4 != 0
            attribution = f"Photo by A{seed} via Flickr" if flickr else f"A{seed}, via Wikimedia Commons"
            ctype = "tag" if i == 0 else types[(seed * 7) % 20]
            caption = "red car, street, night" if ctype == "tag" else f"A synthetic scene number {seed} on a grid."
            meta = new_record(key, 48 + i % 7, 40, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                              attribution, "2026-01-01T00:00:00Z", ctype, caption, [])
            samples.append((key, meta, data, "jpg"))
        write_shard(src / f"gpic_raw_{s:05d}.tar", samples)
    return src


def _decisions(tmp_path: Path, keys: list[str], stage: str, reason: str) -> Path:
    import pandas as pd

    out = tmp_path / stage
    out.mkdir()
    pd.DataFrame({"key": keys, "shard": "x", "stage": stage, "keep": [False] * len(keys), "reason": reason,
                  "license": "", "license_family": "", "source": ""}).to_parquet(out / "decisions.parquet")
    return out



def test_same_inputs_and_seed_give_byte_identical_outputs(tmp_path: Path) -> None:
    src = _pool(tmp_path)
    keys = [s.key for s in iter_samples(src, images=False)]
    dec = _decisions(tmp_path, keys[:5], "quality", "blur")
    a = pack.pack([src, dec], tmp_path / "a", 4, 12, 12, seed=7)
    b = pack.pack([dec, str(src)], tmp_path / "b", 4, 12, 12, seed=7)
    assert a == b
    assert file_tree(tmp_path / "a") == file_tree(tmp_path / "b")
    c = pack.pack([src, dec], tmp_path / "c", 4, 12, 12, seed=8)
    assert [e["sha256"] for e in c["shards"]] != [e["sha256"] for e in a["shards"]]
    assert sha256_file(tmp_path / "a" / "train" / "gpic_train_00000.tar") == a["shards"][0]["sha256"]


def test_decisions_splits_tiers_and_records(tmp_path: Path) -> None:
    from gpic_lab.core.licenses import source_of
    from gpic_lab.shards.validate import validate

    src = _pool(tmp_path)
    keys = [s.key for s in iter_samples(src, images=False)]
    q = _decisions(tmp_path, keys[:6], "quality", "blur")
    d = _decisions(tmp_path, keys[4:9], "dedup", "near-duplicate")
    out = tmp_path / "out"
    m = pack.pack([src, q, d], out, 5, 0.1, 0.2, seed=1)
    packed = {s.key: s for s in iter_samples(out, images=False)}
    assert set(packed) == set(keys[9:])  # union of drops excluded, nothing else lost, no duplicates
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["drops"] == {"dedup": {"near-duplicate": 5}, "quality": {"blur": 6}}
    assert sheet["excluded"] == 9 and sheet["stages_applied"] == ["dedup", "quality"]
    assert m["splits"]["val"]["samples"] == round(0.1 * 111) and m["splits"]["test"]["samples"] == round(0.2 * 111)
    # stratified: each split's flickr share within one sample of the pool's
    pool_share = sum(source_of(s.meta) == "flickr" for s in packed.values()) / len(packed)
    for split in ("train", "val", "test"):
        recs = [s.meta for s in packed.values() if f"/{split}/" in s.shard]
        assert abs(sum(source_of(r) == "flickr" for r in recs) - pool_share * len(recs)) <= 1.01 + 0.02 * len(recs)
    # balanced train shards: sizes and per-type counts within 1
    train = [e for e in m["shards"] if e["split"] == "train"]
    assert len(train) == 5 and max(e["samples"] for e in train) - min(e["samples"] for e in train) <= 1
    for t in ("short", "medium"):
        counts = [e["caption_types"].get(t, 0) for e in train]
        assert max(counts) - min(counts) <= 1
    assert m["tiers"]["nano"]["shards"] == 1 and m["tiers"]["lite"]["shards"] == 1 and m["tiers"]["full"]["shards"] == 5
    for s in packed.values():
        name = Path(s.shard).name
        expect = [] if "train" not in name else (["nano", "lite", "full"] if name.endswith("00000.tar") else ["full"])
        assert s.meta["split"] == expect
    assert validate([out], workers=1)[0] == []
    assert "| quality | blur | 6 |" in (out / "datasheet.md").read_text()


def test_tier_shards() -> None:
    assert pack.tier_shards(8000) == {"nano": 80, "lite": 800, "full": 8000}
    assert pack.tier_shards(3) == {"nano": 1, "lite": 1, "full": 3}
    assert pack.tier_shards(25) == {"nano": 1, "lite": 3, "full": 25}  # rounded half up


def test_captions_override_and_missing_caption_is_excluded(tmp_path: Path) -> None:
    import pandas as pd

    src = _pool(tmp_path, 1, 12)
    keys = [s.key for s in iter_samples(src, images=False)]
    caps = tmp_path / "c.captions.parquet"
    pd.DataFrame({"key": keys[:2], "caption_type": ["long", "tag"], "caption": ["New caption one.", ""],
                  "prompt_version": "v1"}).to_parquet(caps)
    m = pack.pack([src, caps], tmp_path / "out", 1, 0, 0)
    got = {s.key: s.meta for s in iter_samples(tmp_path / "out", images=False)}
    assert got[keys[0]]["caption"] == "New caption one." and got[keys[0]]["caption_type"] == "long"
    assert keys[1] not in got and m["splits"]["train"]["samples"] == 11
    assert json.loads((tmp_path / "out" / "datasheet.json").read_text())["drops"] == {"pack": {"missing-caption": 1}}
    capdir = tmp_path / "captions"  # a `gpic-lab caption` output dir (parquet + done/ markers) via captions=
    (capdir / "done").mkdir(parents=True)
    (capdir / "done" / "x.done").write_text("1\n")
    (capdir / "x.captions.parquet").write_bytes(caps.read_bytes())
    again = pack.pack([src], tmp_path / "out2", 1, 0, 0, captions=[capdir])
    assert again["shards"][0]["sha256"] == m["shards"][0]["sha256"]
    with pytest.raises(UsageError, match="no captions parquet"):
        pack.pack([src], tmp_path / "out3", 1, 0, 0, captions=[tmp_path / "nope"])
    bad_type = tmp_path / "bad.captions.parquet"  # a caption_type validate rejects: excluded, counted
    pd.DataFrame({"key": keys[2:3], "caption_type": ["huge"], "caption": ["Some caption."],
                  "prompt_version": "v1"}).to_parquet(bad_type)
    m5 = pack.pack([src, bad_type], tmp_path / "out5", 1, 0, 0)
    assert m5["splits"]["train"]["samples"] == 11
    assert json.loads((tmp_path / "out5" / "datasheet.json").read_text())["drops"] == {"pack": {"schema": 1}}
    every = tmp_path / "all.captions.parquet"  # `caption --levels all`: four rows per key would all but one vanish
    pd.DataFrame({"key": [keys[0]] * 2, "caption_type": ["tag", "long"], "caption": ["a, b, c", "Long one."],
                  "prompt_version": "v1"}).to_parquet(every)
    with pytest.raises(UsageError, match=f"all.captions.parquet: several captions for key {keys[0]}"):
        pack.pack([src], tmp_path / "out4", 1, 0, 0, captions=[every])


def test_verify_names_missing_and_corrupt_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main

    out = tmp_path / "out"
    pack.pack([_pool(tmp_path, 2, 10)], out, 3, 2, 2)
    assert verify(out / "manifest.json") == ([], 5)
    copy = tmp_path / "download"
    for rel, data in file_tree(out).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    (copy / "train" / "gpic_train_00001.tar").unlink()
    corrupt = copy / "val" / "gpic_val_00000.tar"
    data = bytearray(corrupt.read_bytes())
    data[700] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with open(copy / "train" / "gpic_train_00002.tar", "ab") as fh:
        fh.write(b"\0" * 512)
    problems, checked = verify(out / "manifest.json", root=copy)
    assert checked == 5
    assert sorted((p.file, p.code) for p in problems) == [
        ("train/gpic_train_00001.tar", "missing"), ("train/gpic_train_00002.tar", "size-mismatch"),
        ("val/gpic_val_00000.tar", "sha256-mismatch")]
    capsys.readouterr()
    assert main(["verify", str(out / "manifest.json"), "--root", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("train/gpic_train_00001.tar: missing")
    assert main(["verify", str(out)]) == 0
    assert main(["verify", str(tmp_path / "nope.json")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    for bad, why in (({"file": "../../etc/passwd", "bytes": 1, "sha256": "x"}, "unsafe file name"),
                     (5, "shards\\[0\\] is not an entry")):
        (tmp_path / "evil.json").write_text(json.dumps({**manifest, "shards": [bad]}))
        with pytest.raises(UsageError, match=why):
            verify(tmp_path / "evil.json")


def test_pack_cli_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpic_lab.commands.cli import main

    src = _pool(tmp_path, 1, 10)
    assert main(["pack", str(src), "--out", str(tmp_path / "o"), "--shards", "2", "--val", "2", "--test", "1"]) == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert Counter(e["split"] for e in m["shards"]) == {"train": 2, "val": 1, "test": 1}
    assert main(["pack", str(src), "--out", str(tmp_path / "o2"), "--shards", "1", "--val", "8", "--test", "8"]) == 2
    assert "exceeds" in capsys.readouterr().err
    assert main(["pack", str(src), "--out", str(tmp_path / "o3"), "--shards", "1", "--val", "2.5"]) == 2
    assert "whole number" in capsys.readouterr().err and not (tmp_path / "o3" / "manifest.json").exists()
    before = sorted(p.name for p in src.iterdir())
    assert main(["pack", str(src), "--out", str(src.parent), "--shards", "1"]) == 2  # would eat its own sources
    assert "lies inside --out" in capsys.readouterr().err and sorted(p.name for p in src.iterdir()) == before
    with pytest.raises(UsageError, match="not a shard"):
        pack.classify_inputs([tmp_path / "nothing-here"])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(GpicError, match="junk.parquet: unreadable parquet input"):
        pack.classify_inputs([src, tmp_path / "junk.parquet"])
    stage = tmp_path / "stage"
    stage.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(stage / "decisions.parquet")
    assert main(["pack", str(src), str(stage), "--out", str(tmp_path / "o4"), "--shards", "1"]) == 1
    err = capsys.readouterr().err
    assert "decisions.parquet: unreadable parquet input" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UsageError, match="no source shards"):
        pack.classify_inputs([])


def test_find_decisions_names_a_missing_or_remote_table(tmp_path: Path) -> None:
    from gpic_lab.errors import UsageError
    from gpic_lab.pack.report import find_decisions

    with pytest.raises(UsageError, match="not URLs"):
        find_decisions("s3://bucket/interim/quality", root=tmp_path)
    with pytest.raises(UsageError, match="nope: no decisions.parquet"):
        find_decisions(str(tmp_path / "nope"), root=tmp_path)


def test_a_pack_without_tables_never_imports_pyarrow(tmp_path: Path) -> None:
    """Decision and caption tables are the only parquet a pack reads: without them, a fresh process packs without
    importing pyarrow (about a tenth of a second of every `gpic-lab pack`)."""
    import subprocess
    import sys

    src = _pool(tmp_path, 2, 10)
    code = ("import sys; from gpic_lab.pack.packer import pack; "
            f"pack([{str(src)!r}], {str(tmp_path / 'out')!r}, 2, 2, 2); "
            "print('pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
    assert len(list((tmp_path / "out" / "train").glob("*.tar"))) == 2
