"""validate and catalog on planted problems: every code reported, nothing lost, nothing left behind."""

from __future__ import annotations

import csv
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gpic_lab.sample.broken import build_broken
from gpic_lab.shards.catalog import catalog_or_fail, quarantine_path, scan
from gpic_lab.shards.reader import ShardIndex, iter_entries, iter_samples
from gpic_lab.shards.validate import CODES, validate
from gpic_lab.shards.writer import write_shard

CLI = [sys.executable, "-m", "gpic_lab.commands.cli"]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[tuple[str, str, str]]]:
    out = tmp_path_factory.mktemp("broken")
    expected = {(e["shard"], e["member"], e["code"]) for e in build_broken(out)}
    return out, expected


def _parse(lines: list[str]) -> set[tuple[str, str, str]]:
    got = set()
    for line in lines:
        location, code, _ = line.split(": ", 2)
        shard, member = location.split(":", 1)
        got.add((Path(shard).name, member, code))
    return got


def test_validate_cli_reports_every_planted_problem(broken, tmp_path: Path) -> None:
    out, expected = broken
    proc = subprocess.run([*CLI, "validate", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _parse(proc.stdout.splitlines()) == expected
    assert {code for _, _, code in expected} == set(CODES)  # the plants cover the whole vocabulary
    assert "problem(s)" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing extracted anywhere


def test_validate_exit_codes(sample_dir: Path, tmp_path: Path) -> None:
    ok = subprocess.run([*CLI, "validate", str(sample_dir / "train"), str(sample_dir / "raw")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == ""
    missing = subprocess.run([*CLI, "validate", str(tmp_path / "nope.tar")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_validate_parallel_equals_serial(broken) -> None:
    out, _ = broken
    serial, n1 = validate([out], workers=1)
    parallel, n2 = validate([out], workers=2)
    assert [p.line() for p in serial] == [p.line() for p in parallel] and n1 == n2


def test_catalog_fail_leaves_nothing(broken, tmp_path: Path, sample_dir: Path) -> None:
    out, _ = broken
    target = tmp_path / "cat.parquet"
    proc = subprocess.run([*CLI, "catalog", str(out), "-o", str(target)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert list(tmp_path.iterdir()) == []
    earlier = subprocess.run([*CLI, "catalog", str(out), "-o", str(target), "--on-error", "quarantine"],
                             capture_output=True, text=True)
    assert earlier.returncode == 0 and target.exists() and quarantine_path(target).exists()
    again = subprocess.run([*CLI, "catalog", str(out), "-o", str(target)], capture_output=True, text=True)
    assert again.returncode == 1 and "of an earlier run" in again.stderr
    assert list(tmp_path.iterdir()) == []  # no stale catalog left looking current
    quarantine_path(target).write_bytes(b"stale")
    clean = subprocess.run([*CLI, "catalog", str(sample_dir / "val"), "-o", str(target)], capture_output=True, text=True)
    assert clean.returncode == 0 and target.exists() and not quarantine_path(target).exists()


def test_catalog_quarantine_accounts_for_every_sample(tmp_path: Path, tiny_shards) -> None:
    good = tiny_shards(2, 5)
    damaged = tmp_path / "gpic_train_00009.tar"
    samples = list(iter_samples(good[0]))
    bad_json = (samples[0].key, b"{oops", samples[0].image, samples[0].image_ext)
    write_shard(damaged, [bad_json, *samples[1:]])
    target = tmp_path / "out" / "cat.parquet"
    result = catalog_or_fail([*good, damaged], target, on_error="quarantine")
    rows = pq.read_table(target).to_pylist()
    quarantined = pq.read_table(quarantine_path(target)).to_pylist()
    assert result["written"] and len(rows) == 14 and len(quarantined) == 1
    assert quarantined[0]["code"] == "bad-json" and quarantined[0]["key"] == samples[0].key
    assert len(rows) + len(quarantined) == 15


def test_catalog_rows_and_random_access(sample_dir: Path) -> None:
    table, problems = scan([sample_dir / "train", sample_dir / "raw"])
    assert problems == [] and table.num_rows == 9 + 42
    row = table.to_pylist()[3]
    for col in ("key", "shard", "license", "split", "image_format", "json_offset", "image_offset", "image_size"):
        assert col in row
    index = ShardIndex.build([sample_dir / "train"])
    some = next(iter(iter_samples(sample_dir / "train")))
    assert index.get(some.key).image == some.image


def test_written_shard_validates_clean_and_round_trips(tiny_shards, tmp_path: Path) -> None:
    src = tiny_shards(1, 6)[0]
    again = tmp_path / "again.tar"
    write_shard(again, iter_samples(src))
    assert again.read_bytes() == src.read_bytes()
    assert validate([again]) == ([], 6)
    with tarfile.open(again) as tar:
        infos = tar.getmembers()
    assert all(i.mtime == 0 and i.uid == 0 and i.mode == 0o644 for i in infos)
    assert [i.name.rsplit(".", 1)[1] for i in infos[:2]] == ["json", infos[1].name.rsplit(".", 1)[1]]


def test_unsafe_names_are_reported_not_materialised(broken, tmp_path: Path) -> None:
    out, _ = broken
    codes = [e.code for e in iter_entries(out / "unsafe.tar") if hasattr(e, "code")]
    assert codes.count("unsafe-member-name") == 3
    assert not (tmp_path.parent / "escape.json").exists()


def test_broken_expected_csv_written(broken) -> None:
    out, expected = broken
    rows = {(r["shard"], r["member"], r["code"]) for r in csv.DictReader(open(out / "expected.csv"))}
    assert rows == expected


def test_fast_scan_equals_general_scan_and_gives_up_on_any_problem(sample_dir: Path, broken) -> None:
    from gpic_lab.shards.catalog import scan_shard
    from gpic_lab.shards.fastscan import scan_local
    from gpic_lab.shards.reader import list_shards

    clean = list_shards([sample_dir / "train", sample_dir / "val", sample_dir / "test", sample_dir / "raw"])
    for shard in clean:
        assert scan_local(shard) is not None, f"{shard}: fast path refused a clean shard"
        fast, _ = scan_shard(shard)
        general, problems = scan_shard(shard, fast=False)
        assert problems == [] and fast.equals(general), shard
    refused = 0
    for shard in list_shards([broken[0]]):
        _, problems = scan_shard(shard, fast=False)
        if problems:
            assert scan_local(shard) is None, f"{shard}: fast path accepted a shard with {problems[0].code}"
            refused += 1
    assert refused >= 8


def test_vectorised_sources_match_source_of() -> None:
    import pyarrow as pa

    from gpic_lab.core.licenses import source_of
    from gpic_lab.shards.catalog import sources

    atts = ["Photo by A via Flickr", "File:X.jpg by B, Wikimedia Commons", "by C (wikipedia)", "by D", "",
            "FLICKR user E"]
    urls = ["https://creativecommons.org/licenses/by/2.0/", "", "", "https://www.flickr.com/x", "", ""]
    got = sources(pa.array(atts), pa.array(urls)).to_pylist()
    assert got == [source_of({"attribution": a, "license_url": u}) for a, u in zip(atts, urls, strict=True)]
    assert got == ["flickr", "wikimedia", "wikimedia", "flickr", "other", "flickr"]


def test_catalog_to_unwritable_output_is_one_line_error(tmp_path: Path, sample_dir: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be")
    proc = subprocess.run([*CLI, "catalog", str(sample_dir / "train"), "-o", str(blocker / "cat.parquet")],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("gpic-lab catalog: error: ")
    assert "cannot write output" in proc.stderr and str(blocker / "cat.parquet") in proc.stderr


def test_links_and_devices_are_unsafe_members(tmp_path: Path, tiny_shards) -> None:
    import io

    src = tiny_shards(1, 1)[0]
    shard = tmp_path / "specials.tar"
    with tarfile.open(src) as good, tarfile.open(shard, "w") as tar:
        for info in good.getmembers():
            tar.addfile(info, good.extractfile(info))
        for name, kind in (("hard.jpg", tarfile.LNKTYPE), ("dev.jpg", tarfile.CHRTYPE), ("blk.png", tarfile.BLKTYPE),
                           ("pipe.json", tarfile.FIFOTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = good.getmembers()[0].name if kind == tarfile.LNKTYPE else ""
            tar.addfile(info, io.BytesIO(b""))
    problems, samples = validate([shard])
    assert samples == 1
    assert sorted((p.member, p.code) for p in problems) == [
        ("blk.png", "unsafe-member-name"), ("dev.jpg", "unsafe-member-name"), ("hard.jpg", "unsafe-member-name"),
        ("pipe.json", "unsafe-member-name")]
    assert not list(tmp_path.glob("dev*")) and not list(tmp_path.glob("hard*"))


def _ustar(name: bytes, size: bytes, typeflag: bytes = b"0") -> bytes:
    """A raw ustar header with a valid checksum (size: the 12-byte field as written, octal or base-256)."""
    h = bytearray(512)
    h[0:len(name)], h[100:108], h[124:136], h[136:148] = name, b"0000644\0", size, b"00000000000\0"
    h[156:157], h[257:265], h[148:156] = typeflag, b"ustar\x0000", b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _pax(record: bytes) -> bytes:
    return _ustar(b"pax", b"%011o\0" % len(record), b"x") + record.ljust(512, b"\0")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("head", [
    _pax(b"zz garbage\n"), _pax(b"0 path=x\n"), _pax(b"13 size=abc\n"), _pax(b"13 size=-99\n"),
    _pax(b"40 size=999999999999999999999999999999\n"), _ustar(b"a.json", b"\xff" * 12),
    _ustar(b"a.json", b"\x80" + b"\x7f" * 11), _ustar(b"././@LongLink", b"\x80" + b"\x7f" * 11, b"L"),
], ids=["pax-garbage", "pax-zero-length", "pax-size-text", "pax-size-negative", "pax-size-huge",
        "base256-negative", "base256-huge", "longlink-huge"])
def test_corrupt_headers_are_truncated_tar_not_crashes(tmp_path: Path, head: bytes) -> None:
    shard = tmp_path / "corrupt.tar"
    shard.write_bytes(head + _ustar(b"a.json", b"00000000010\0") + b"x" * 512 + b"\0" * 1024)
    problems, _ = validate([shard])
    assert [p.code for p in problems] == ["truncated-tar"], [p.line() for p in problems]


def test_fast_scan_refuses_a_json_size_beyond_the_file(tmp_path: Path) -> None:
    from gpic_lab.shards.fastscan import scan_local

    shard = tmp_path / "huge.tar"
    shard.write_bytes(_ustar(b"0" * 64 + b".json", b"77777777777\0") + b"{}".ljust(512, b"\0") + b"\0" * 1024)
    assert scan_local(str(shard)) is None


@pytest.mark.parametrize("raw", [b"[" * 200_000, b'{"key": 1' + b"0" * 5000 + b"}", b'{"img_width": NaN}'],
                         ids=["deep-nesting", "huge-int", "nan"])
def test_pathological_json_is_bad_json(tmp_path: Path, sample_dir: Path, raw: bytes) -> None:
    src = next(iter(iter_samples(sample_dir / "train")))
    shard = tmp_path / "json.tar"
    write_shard(shard, [(src.key, raw, src.image, src.image_ext)])
    problems, samples = validate([shard])
    assert samples == 0 and [p.code for p in problems] == ["bad-json"], [p.line() for p in problems]


@pytest.mark.parametrize("key", ["../escape", "sub/dir", "", ".hidden", "tab\there"])
def test_writer_refuses_keys_that_are_not_flat_member_names(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="flat tar member"):
        write_shard(tmp_path / "w.tar", [(key, {"key": key}, b"\xff\xd8\xff", "jpg")])
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too


def test_writer_refuses_a_key_twice(tmp_path: Path, tiny_shards) -> None:
    sample = next(iter(iter_samples(tiny_shards(1, 1)[0])))
    with pytest.raises(ValueError, match="given twice"):
        write_shard(tmp_path / "twice.tar", [sample, sample])
    assert not (tmp_path / "twice.tar").exists()


def test_catalog_check_images_decodes_and_quarantines_image_problems(broken, tmp_path: Path) -> None:
    out, expected = broken
    images = out / "images.tar"
    planted = {(m, c) for s, m, c in expected if s == "images.tar"}
    meta_only = catalog_or_fail([images], tmp_path / "a.parquet", on_error="quarantine")
    decoded = catalog_or_fail([images], tmp_path / "b.parquet", on_error="quarantine", check_images=True)
    assert {p.code for p in meta_only["problems"]} == {"image-decode", "format-mismatch"}  # sniffing only
    assert {(p.member, p.code) for p in decoded["problems"]} == planted and decoded["rows"] == 0
    rows = pq.read_table(tmp_path / "b.quarantine.parquet").to_pylist()
    assert {(r["member"], r["code"]) for r in rows} == planted


def test_validate_max_pixels_is_configurable(sample_dir: Path) -> None:
    shard = sample_dir / "train" / "gpic_train_00000.tar"
    proc = subprocess.run([*CLI, "validate", str(shard), "--max-pixels", "1000"], capture_output=True, text=True)
    assert proc.returncode == 1
    codes = {line.split(": ")[1] for line in proc.stdout.splitlines()}
    assert codes == {"too-many-pixels"} and len(proc.stdout.splitlines()) == 4
    bad = subprocess.run([*CLI, "validate", str(shard), "--max-pixels", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must be positive" in bad.stderr  # --max-pixels is the old --pixel-limit


def test_catalog_quarantine_accounts_for_every_planted_member(broken, tmp_path: Path) -> None:
    out, _ = broken
    target = tmp_path / "cat.parquet"
    proc = subprocess.run([*CLI, "catalog", str(out), "-o", str(target), "--on-error", "quarantine"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    rows = pq.read_table(target).to_pylist()
    quarantined = pq.read_table(quarantine_path(target)).to_pylist()
    kept = {(Path(r["shard"]).name, r["key"]) for r in rows}
    q_members = {(Path(r["shard"]).name, r["member"]) for r in quarantined}
    q_keys = {(Path(r["shard"]).name, r["key"]) for r in quarantined if r["key"]}
    members = []
    for shard in sorted(out.glob("*.tar")):
        try:
            with tarfile.open(shard) as tar:
                members += [(shard.name, m.name) for m in tar if not m.isdir()]
        except tarfile.ReadError:
            assert (shard.name, "-") in q_members or any(s == shard.name for s, _ in q_members), shard.name
    assert len(members) > 30
    lost = [(s, m) for s, m in members
            if (s, m) not in q_members and (s, m.rpartition(".")[0]) not in q_keys | kept]
    assert lost == []


def test_fsspec_urls_are_streamed_validated_cataloged_and_range_read(sample_dir: Path) -> None:
    import fsspec

    from gpic_lab.shards.reader import read_range

    src = sample_dir / "train" / "gpic_train_00000.tar"
    fsspec.filesystem("memory").pipe("/gpic-audit/train_0.tar", src.read_bytes())
    url = "memory://gpic-audit/train_0.tar"
    local = list(iter_samples(src))
    remote = list(iter_samples(url))
    assert [(s.key, s.image) for s in remote] == [(s.key, s.image) for s in local]
    assert validate([url], workers=1) == ([], len(local))
    table, problems = scan([url], workers=1)
    assert problems == [] and table.column("shard").to_pylist() == [url] * len(local)
    row = table.to_pylist()[1]
    assert read_range(url, row["image_offset"], row["image_size"]) == local[1].image
    assert ShardIndex.build([url]).get(local[2].key).image == local[2].image


def test_huge_declared_size_on_a_non_seekable_stream_is_truncated_tar() -> None:
    import io

    from gpic_lab.errors import ShardError
    from gpic_lab.shards.tarscan import iter_members

    class Pipe(io.RawIOBase):  # a stream that cannot seek or tell its size (like a pipe or an HTTP body)
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return self.inner.read(n)

    data = _ustar(b"a.json", b"\x80" + b"\x7f" * 11) + b"x" * 512 + b"\0" * 1024
    with pytest.raises(ShardError) as err:
        list(iter_members(Pipe(data), "pipe.tar"))
    assert err.value.code == "truncated-tar"


def test_catalog_of_collected_uncaptioned_shards_needs_the_flag(tmp_path: Path, sample_dir: Path) -> None:
    import json

    samples = list(iter_samples(sample_dir / "train"))
    shard = tmp_path / "gpic_collected_00000.tar"
    write_shard(shard, [(s.key, {**json.loads(s.json_bytes), "caption_type": "", "caption": ""}, s.image, s.image_ext)
                        for s in samples])
    strict = subprocess.run([*CLI, "catalog", str(shard), "-o", str(tmp_path / "a.parquet")], capture_output=True, text=True)
    assert strict.returncode == 1 and "schema: caption_type ''" in strict.stdout
    lenient = subprocess.run([*CLI, "catalog", str(shard), "-o", str(tmp_path / "b.parquet"), "--no-caption-required"],
                             capture_output=True, text=True)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert pq.read_table(tmp_path / "b.parquet").column("caption_type").to_pylist() == [""] * len(samples)


def test_bench_catalog_reports_same_rows_on_a_tiny_run(capsys, tmp_path) -> None:
    import json

    from gpic_lab.commands.cli import main

    rc = main(["bench", "catalog", "--quick", "--shards", "2", "--per-shard", "30", "--image-kb", "2",
               "--dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["same_rows"] is True and result["samples"] == 60
    assert result["ratio"] > 0 and {"name", "unit", "ours", "baseline", "peak_rss_mb"} <= set(result)
    assert not any(tmp_path.iterdir())  # generated shards are removed
