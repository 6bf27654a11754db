"""pack writes its output shards in parallel (local pool, Dask) with byte-identical results; the shard writer
gives tarfile's exact bytes and the sha256 of what it wrote; the fast metadata path gives the reader's samples."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import zlib
from pathlib import Path

import pytest
from conftest import file_tree

from gpic_lab.pack.packer import pack
from gpic_lab.shards.reader import iter_samples, list_shards


def _sources(sample_dir: Path) -> list[str]:
    return [str(sample_dir / d) for d in ("train", "val", "test")]


def test_one_two_workers_and_dask_write_byte_identical_output(sample_dir: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    one = pack(_sources(sample_dir), tmp_path / "one", 5, 3, 3, seed=1)
    two = pack(_sources(sample_dir), tmp_path / "two", 5, 3, 3, seed=1, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = pack(_sources(sample_dir), tmp_path / "dask", 5, 3, 3, seed=1, workers=2, engine="dask",
                    scheduler=cluster.scheduler_address)
        with Client(cluster) as client:  # a notebook's client: used, and left open
            given = pack(_sources(sample_dir), tmp_path / "client", 5, 3, 3, seed=1, workers=2, engine="dask",
                         scheduler=client)
            assert client.status == "running" and client.submit(len, "abc").result() == 3
    reference = file_tree(tmp_path / "one")
    assert len([f for f in reference if f.endswith(".tar")]) == 7  # 5 train + val + test
    assert file_tree(tmp_path / "two") == reference and file_tree(tmp_path / "dask") == reference
    assert file_tree(tmp_path / "client") == reference
    assert one == two == dask == given
    packed = {s.key for s in iter_samples([tmp_path / "two"], images=False)}
    assert packed == {s.key for s in iter_samples(_sources(sample_dir), images=False)}


def test_an_unreachable_scheduler_is_named_and_nothing_is_written(sample_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The client connects while the plan is made; an unreachable scheduler still ends the pack with one line."""
    from gpic_lab.errors import GpicError

    monkeypatch.setattr("gpic_lab.engine.backends.CONNECT_TIMEOUT", "2s")
    with pytest.raises(GpicError, match="cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        pack(_sources(sample_dir), tmp_path / "out", 2, 2, 2, seed=1, workers=2, engine="dask",
             scheduler="tcp://127.0.0.1:9")
    assert not list((tmp_path / "out").rglob("*.tar"))


def test_pack_cli_workers_option(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.commands.cli import main

    args = [*_sources(sample_dir), "--shards", "3", "--val", "2", "--test", "2", "--no-progress"]
    assert main(["pack", *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["pack", *args, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    assert file_tree(tmp_path / "a") == file_tree(tmp_path / "b")


@pytest.mark.parametrize("name,size", [("a.json", 0), ("k" * 64 + ".jpg", 123_456), ("x" * 100, 7),
                                       ("x" * 101, 7), ("é.png", 5), ("k.jpg", 8**11 - 1)])
def test_writer_headers_are_tarfiles_own(name: str, size: int) -> None:
    from gpic_lab.shards.writer import _info, header

    def made(fn):  # the header, or the error tarfile gives (a name too long for ustar)
        try:
            return fn()
        except ValueError as exc:
            return repr(exc)

    assert made(lambda: header(name, size)) == made(
        lambda: _info(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))


def test_rewriting_the_sample_shards_gives_their_bytes_and_hash(sample_dir: Path, tmp_path: Path) -> None:
    from gpic_lab.shards.writer import write_shard

    shards = list_shards([sample_dir / d for d in ("train", "val", "test", "raw")])
    for i, shard in enumerate(shards):
        out = tmp_path / f"{i}.tar"
        info = write_shard(out, iter_samples(shard))
        data = out.read_bytes()
        assert data == Path(shard).read_bytes(), shard
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data)


def test_fast_metadata_samples_equal_the_readers(sample_dir: Path, tiny_shards) -> None:
    from gpic_lab.shards.fastscan import samples_local

    shards = list_shards([sample_dir / d for d in ("train", "val", "test", "raw")]) + [str(p) for p in tiny_shards(1, 6)]
    for shard in shards:
        assert samples_local(shard) == list(iter_samples(shard, images=False)), shard


def test_fast_metadata_path_refuses_what_it_cannot_vouch_for(tmp_path: Path, tiny_shards) -> None:
    from gpic_lab.shards.fastscan import samples_local

    src = tiny_shards(1, 2)[0]
    pax = tmp_path / "pax.tar"
    with tarfile.open(src) as good, tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in good.getmembers():
            info.pax_headers = {"comment": "not the canonical layout"}
            tar.addfile(info, good.extractfile(info))
    assert samples_local(str(pax)) is None
    assert len(list(iter_samples(pax, images=False))) == 2


def test_images_copied_by_location_give_the_same_shard_as_bytes(tmp_path: Path, monkeypatch) -> None:
    import os

    from gpic_lab.errors import UsageError
    from gpic_lab.shards import writer
    from gpic_lab.shards.writer import Located, write_shard

    monkeypatch.setattr(writer, "CHUNK", 4096)  # images larger than the buffer, members across its edge
    monkeypatch.setattr(writer, "_buffers", type(writer._buffers)())
    blobs = [b"\xff\xd8" + bytes([i % 251]) * n for i, n in enumerate((0, 1, 511, 512, 513, 4093, 4096, 9000, 70_001))]
    src = tmp_path / "images.bin"
    src.write_bytes(b"".join(blobs))
    keys = [hashlib.sha256(b).hexdigest() for b in blobs]
    meta = b'{"note": "r\\u00e9cord"}'
    by_bytes = write_shard(tmp_path / "a.tar", [(k, meta, b, "jpg") for k, b in zip(keys, blobs, strict=True)])
    fd = os.open(src, os.O_RDONLY)
    try:
        offsets = [sum(map(len, blobs[:i])) for i in range(len(blobs))]
        located = [(k, meta, Located(fd, o, len(b), k), "jpg") for k, o, b in zip(keys, offsets, blobs, strict=True)]
        by_location = write_shard(tmp_path / "b.tar", located)
        assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
        assert by_bytes == by_location
        assert by_bytes["sha256"] == hashlib.sha256((tmp_path / "a.tar").read_bytes()).hexdigest()
        with tarfile.open(tmp_path / "b.tar") as tar:
            assert [tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")] == blobs
        beyond = [(keys[0], meta, Located(fd, len(b"".join(blobs)) - 10, 20, "src:key.jpg"), "jpg")]
        with pytest.raises(UsageError, match="src:key.jpg: short read"):  # the source shrank since its scan
            write_shard(tmp_path / "c.tar", beyond)
        assert not (tmp_path / "c.tar").exists() and not list(tmp_path.glob(".c.tar.*"))
    finally:
        os.close(fd)


def test_fast_metadata_records_parse_as_the_readers_json(tmp_path: Path) -> None:
    from gpic_lab.shards.fastscan import samples_local
    from gpic_lab.shards.schema import new_record
    from gpic_lab.shards.writer import encode_meta, write_shard

    data = b"\xff\xd8\xff\xe0" + bytes(100)
    key = hashlib.sha256(data).hexdigest()
    meta = new_record(key, 2**40, 7, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/",
                      'Ph\u00f6to "1" by \u4f5c\u8005 \U0001f600 via Flickr\\', "2026-01-01T00:00:00Z", "long",
                      "Tab\tnew\nline, \u00e9t\u00e9, \u2028 and a NUL-free caption.", ["lite", "full"])
    raw = encode_meta(meta)
    escaped = raw.replace("\u00f6".encode(), b"\\u00f6").replace(b"Tab", b"T\\u0061b")  # \u escapes decode alike
    reordered = encode_meta(dict(reversed(list(meta.items()))))
    for i, record in enumerate((raw, escaped, reordered)):
        path = tmp_path / f"{i}.tar"
        write_shard(path, [(key, record, data, "jpg")])
        fast = samples_local(str(path))
        assert fast is not None and fast == list(iter_samples(path, images=False))
        assert list(fast[0].meta) == list(json.loads(record))  # the same key order


def test_a_parallel_source_scan_plans_as_one_process_does(tmp_path: Path, tiny_shards, monkeypatch) -> None:
    """From PARALLEL_SCAN_SHARDS local source shards on, the plan's header scans run on the workers (local pool and
    Dask); the output is byte-identical to one process's, a shard the fast scan refuses is still read, and keys
    repeated in later shards are dropped as duplicates."""
    import shutil

    from distributed import LocalCluster

    import gpic_lab.engine.backends as backends
    from gpic_lab.pack.packer import PARALLEL_SCAN_SHARDS

    shards = [str(p) for p in tiny_shards(PARALLEL_SCAN_SHARDS, 3)]
    pax = tmp_path / "pax.tar"  # not the canonical layout: read by the general scanner
    with tarfile.open(tiny_shards(1, 2, prefix="other")[0]) as good, \
            tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in good.getmembers():
            info.pax_headers = {"comment": "not the canonical layout"}
            tar.addfile(info, good.extractfile(info))
    copy = tmp_path / "zz_copy_of_first.tar"
    shutil.copy(shards[0], copy)
    sources = [*shards, str(pax), str(copy)]
    scanned = []
    real = backends.map_tasks

    def spy(fn, items, *args, **kwargs):
        if fn.__name__ == "scan_raw":
            scanned.append(len(items))
        return real(fn, items, *args, **kwargs)

    monkeypatch.setattr(backends, "map_tasks", spy)
    one = pack(sources, tmp_path / "one", 4, 2, 2, seed=3)
    assert scanned == []
    two = pack(sources, tmp_path / "two", 4, 2, 2, seed=3, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = pack(sources, tmp_path / "dask", 4, 2, 2, seed=3, workers=2, engine="dask",
                    scheduler=cluster.scheduler_address)
    assert scanned == [len(shards) + 2] * 2
    assert file_tree(tmp_path / "two") == file_tree(tmp_path / "one") == file_tree(tmp_path / "dask")
    assert one == two == dask
    sheet = json.loads((tmp_path / "two" / "datasheet.json").read_text())
    assert sheet["pool"] == 3 * PARALLEL_SCAN_SHARDS + 2 + 3 and sheet["kept"] == 3 * PARALLEL_SCAN_SHARDS
    assert sheet["drops"] == {"pack": {"duplicate-key": 5}}  # the PAX shard's 2 and the copy's 3


def test_records_travel_to_the_writing_tasks_as_their_place_and_arrive_as_planned(tmp_path: Path,
                                                                                   tiny_shards) -> None:
    """A scanned record goes to its shard's task as where its JSON lies in the source (with a caption override
    beside it when the plan changed the caption), a record the fast scan did not read goes as the dict; the task
    rebuilds exactly the plan's record, key order included; a source record rewritten after the plan is refused."""
    import pandas as pd

    from gpic_lab.errors import UsageError
    from gpic_lab.pack.packer import classify_inputs, make_plan, pack, shard_jobs
    from gpic_lab.pack.writing import ImageReader, record_of, write_job

    *src, third = [str(p) for p in tiny_shards(3, 3)]
    pax = tmp_path / "pax.tar"  # the third shard, not in the canonical layout: read by the general scanner
    with tarfile.open(third) as good, \
            tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in good.getmembers():
            info.pax_headers = {"comment": "not the canonical layout"}
            tar.addfile(info, good.extractfile(info))
    samples = list(iter_samples([*src, str(pax)], images=False))
    same, changed, other = samples[0], samples[1], samples[-1]
    captions = tmp_path / "c.captions.parquet"
    pd.DataFrame({"key": [same.key, changed.key, other.key],
                  "caption_type": [same.meta["caption_type"], "long", "long"],
                  "caption": [same.meta["caption"], "A new long caption.", "Another long caption."],
                  "prompt_version": "v1"}).to_parquet(captions)
    inputs = classify_inputs([*src, str(pax), str(captions)])
    plan = make_plan(inputs, 2, 0, 0, seed=0)
    reader = ImageReader()
    jobs = shard_jobs(plan, tmp_path / "out")
    travelled = {record_of(item, reader, where[0])["key"]: item for job in jobs
                 for item, where in zip(job.records, job.images, strict=True)}
    assert travelled.keys() == plan.meta.keys()
    for job in jobs:
        for item, where in zip(job.records, job.images, strict=True):
            rebuilt = record_of(item, reader, where[0])
            assert rebuilt == plan.meta[rebuilt["key"]] and list(rebuilt) == list(plan.meta[rebuilt["key"]])
    reader.close()
    assert travelled[same.key] == (same.json_offset, same.json_size, zlib.crc32(same.json_bytes))  # no change
    assert travelled[changed.key][3:] == ("A new long caption.", "long")
    assert all(isinstance(travelled[s.key], dict) for s in samples if s.shard == str(pax))
    scanned = [s.key for s in samples if s.shard != str(pax)]
    assert [k for k, v in travelled.items() if len(v) == 3 and isinstance(v, tuple)] == \
        [k for k in travelled if k in scanned and k != changed.key]
    (tmp_path / "out" / "train").mkdir(parents=True)
    job = next(j for j in jobs if any(isinstance(r, tuple) for r in j.records))
    item, shard = next((item, where[0]) for item, where in zip(job.records, job.images, strict=True)
                       if isinstance(item, tuple))
    data = bytearray(Path(shard).read_bytes())
    at = data.index(b'"caption": "', item[0], item[0] + item[1]) + len(b'"caption": "')
    data[at] ^= 0x20  # one letter of a caption changes case: same size, same key, different record
    Path(shard).write_bytes(bytes(data))
    with pytest.raises(UsageError, match=rf"{re.escape(shard)}: the JSON member at byte \d+ changed since the plan"):
        write_job(job)
    assert not list((tmp_path / "out").rglob("*.tar"))  # nothing partial: the shard's temp file is gone
    pack([*src, str(pax)], tmp_path / "again", 2, 0, 0, seed=0)  # planned anew, it packs
