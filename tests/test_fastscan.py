"""The fast metadata scan never accepts what the general scanner rejects: header fields changed one byte at a
time (checksum kept valid or not) either make it refuse the shard or leave a shard both scanners read the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpic_lab.shards.catalog import scan_shard
from gpic_lab.shards.fastscan import scan_local
from gpic_lab.shards.ustar import headers_ok

# (offset in the header, replacement byte): name, name padding, mode, size digit and terminator, mtime, checksum,
# type, link name, magic, version, owner name, prefix
MUTATIONS = [(3, ord("G")), (64, ord("_")), (80, ord("x")), (101, ord("9")), (126, ord("8")), (135, ord("x")),
             (140, ord("z")), (150, ord("9")), (155, ord("x")), (156, ord("5")), (156, ord("2")), (200, ord("a")),
             (258, ord("X")), (263, ord("1")), (270, ord("r")), (345, ord("p"))]


def _fix_checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)


@pytest.mark.parametrize("which", [0, 1], ids=["json-header", "image-header"])
@pytest.mark.parametrize("offset,byte", MUTATIONS)
@pytest.mark.parametrize("fix", [True, False], ids=["checksum-fixed", "checksum-stale"])
def test_a_changed_header_is_refused_or_read_alike(tmp_path: Path, tiny_shards, which: int, offset: int, byte: int,
                                                   fix: bool) -> None:
    src = tiny_shards(1, 3)[0]
    data = bytearray(Path(src).read_bytes())
    clean = scan_local(str(src))
    assert clean is not None
    start = clean["json_offset"][1] - 512 if which == 0 else clean["image_offset"][1] - 512
    header = data[start:start + 512]
    header[offset] = byte
    if fix:
        _fix_checksum(header)
    data[start:start + 512] = header
    shard = tmp_path / "changed.tar"
    shard.write_bytes(bytes(data))
    fast = scan_local(str(shard))
    if fast is not None:  # accepted: then the general scanner must find nothing and read the same rows
        general, problems = scan_shard(str(shard), fast=False)
        fast_table, _ = scan_shard(str(shard))
        assert problems == [] and fast_table.equals(general)


def test_headers_ok_checks_what_the_scan_loop_does_not(tiny_shards) -> None:
    src = tiny_shards(1, 2)[0]
    cols = scan_local(str(src))
    data = Path(src).read_bytes()
    heads = b"".join(data[o - 512:o] for pair in zip(cols["json_offset"], cols["image_offset"], strict=True)
                     for o in pair)
    assert headers_ok(heads) and headers_ok(b"")
    for offset, byte in [(3, ord("G")), (90, 1), (130, ord("9")), (150, ord("1")), (156, ord("5")), (258, 0),
                         (345, ord("x"))]:
        bad = bytearray(heads)
        bad[512 + offset] = byte
        assert not headers_ok(bytes(bad)), offset


@pytest.mark.parametrize("stride", [1, 3])
def test_the_loader_reads_clean_local_shards_as_the_general_reader(sample_dir: Path, stride: int) -> None:
    from gpic_lab.loader.stream import Unit, _entries
    from gpic_lab.shards.reader import iter_entries, list_shards

    for shard in list_shards([sample_dir / "train", sample_dir / "raw"]):
        for part in range(stride):
            fast = list(_entries(Unit(shard, part, stride)))
            general = list(iter_entries(shard, images=True))
            assert [s.key for s in fast] == [s.key for s in general]
            mine = [(s.key, s.image, s.meta) for i, s in enumerate(fast) if i % stride == part]
            assert mine == [(s.key, s.image, s.meta) for i, s in enumerate(general) if i % stride == part]


def test_the_loader_reports_a_shard_cut_after_its_scan(tmp_path: Path, tiny_shards) -> None:
    from gpic_lab.loader.stream import Unit, _entries
    from gpic_lab.shards.reader import Problem

    shard = tiny_shards(1, 3)[0]
    entries = _entries(Unit(str(shard), 0, 1))
    first = next(entries)
    assert first.image is not None
    data = Path(shard).read_bytes()
    Path(shard).write_bytes(data[: len(data) // 2])  # cut while the unit is being read
    rest = list(entries)
    assert rest and isinstance(rest[-1], Problem) and rest[-1].code == "truncated-tar"
