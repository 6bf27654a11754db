"""Crafted shards (zeroed header, odd pax size, hostile JSON, an empty archive, control characters in names) in
every command that reads shards: a counted problem or a one-line error with the documented exit code, never a
traceback, never a silently lost sample."""

from __future__ import annotations

from pathlib import Path

import crafted
import pandas as pd
import pytest

from gpic_lab.shards.reader import Problem, iter_entries

CASES = sorted(crafted.SHARD_CASES)
cli = crafted.cli


def _shard(tmp_path: Path, case: str) -> Path:
    return crafted.SHARD_CASES[case](tmp_path / "in" / "gpic_train_00000.tar")


def _one_line_error(err: str, verb: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gpic-lab {verb}: error: "), err[-500:]
    assert "Traceback" not in err and lines[0].isprintable()
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_reader_counts_the_problem(tmp_path: Path, case: str) -> None:
    entries = list(iter_entries(_shard(tmp_path, case)))
    problems = [e for e in entries if isinstance(e, Problem)]
    assert crafted.EXPECTED_CODE[case] in {p.code for p in problems}, [p.line() for p in problems]
    for p in problems:
        assert "\n" not in p.line() and p.line().isprintable()


@pytest.mark.parametrize("case", CASES)
def test_validate(tmp_path: Path, case: str) -> None:
    rc, out, err = cli(["validate", str(_shard(tmp_path, case)), "--workers", "1", "--no-progress"])
    assert rc == 1, err
    assert f": {crafted.EXPECTED_CODE[case]}: " in out


@pytest.mark.parametrize("case", CASES)
def test_catalog_fail_writes_nothing(tmp_path: Path, case: str) -> None:
    out = tmp_path / "cat.parquet"
    rc, stdout, err = cli(["catalog", str(_shard(tmp_path, case)), "-o", str(out), "--workers", "1"])
    assert rc == 1 and not out.exists(), err
    assert f": {crafted.EXPECTED_CODE[case]}: " in stdout


@pytest.mark.parametrize("case", CASES)
def test_catalog_quarantine_counts_it(tmp_path: Path, case: str) -> None:
    out = tmp_path / "cat.parquet"
    rc, _, err = cli(["catalog", str(_shard(tmp_path, case)), "-o", str(out), "--on-error", "quarantine",
                      "--workers", "1"])
    assert rc == 0, err
    quarantined = pd.read_parquet(tmp_path / "cat.quarantine.parquet")
    assert crafted.EXPECTED_CODE[case] in set(quarantined["code"])
    assert not set(pd.read_parquet(out)["key"]) & set(quarantined["key"].dropna())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stage", ["license", "schema", "quality"])
def test_stage_counts_it_as_unreadable(tmp_path: Path, case: str, stage: str) -> None:
    out = tmp_path / "stage"
    rc, _, err = cli(["stage", stage, str(_shard(tmp_path, case)), "--out", str(out), "--workers", "1",
                      "--no-progress"])
    assert rc == 0, err
    frame = pd.read_parquet(out / "decisions.parquet")
    assert f"unreadable:{crafted.EXPECTED_CODE[case]}" in set(frame["reason"])


@pytest.mark.parametrize("case", CASES)
def test_pack_refuses_with_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    out = tmp_path / "packed"
    rc, _, err = cli(["pack", str(_shard(tmp_path, case)), "--out", str(out), "--shards", "1", "--no-validate"])
    assert rc == 1
    assert crafted.EXPECTED_CODE[case] in _one_line_error(err, "pack")
    assert not out.exists() or not list(out.rglob("*.tar"))


@pytest.mark.parametrize("case", ["zeroed-header", "surrogate-license", "license-object", "deep-nesting"])
def test_dedup_stops_with_one_line(tmp_path: Path, case: str) -> None:
    rc, _, err = cli(["dedup", str(_shard(tmp_path, case)), "-o", str(tmp_path / "d.parquet"), "--encoder", "dhash",
                      "--cache", str(tmp_path / "cache")])
    assert rc == 1
    assert crafted.EXPECTED_CODE[case] in _one_line_error(err, "dedup")


@pytest.mark.parametrize("case", ["zeroed-header", "surrogate-caption", "license-object"])
def test_fiftyone_selection_stops_with_one_located_error(tmp_path: Path, case: str) -> None:
    from gpic_lab.errors import ShardError
    from gpic_lab.fo.records import Selection, select

    with pytest.raises(ShardError) as err:
        select([str(_shard(tmp_path, case))], Selection())
    assert err.value.code == crafted.EXPECTED_CODE[case] and str(err.value).isprintable()


def test_loader_skip_counts_crafted_shards(tmp_path: Path) -> None:
    from gpic_lab.loader.stream import StreamConfig, iter_slot

    shards = tuple(str(crafted.SHARD_CASES[c](tmp_path / c / "s_00000.tar")) for c in CASES)
    out = list(iter_slot(StreamConfig(shards, on_corrupt="skip", shuffle_buffer=1), 0, 0, 1))
    stats = out[-1]["__stats__"]
    assert sum(v for k, v in stats.items() if k.startswith("skipped:")) >= len(CASES)
    assert {f"skipped:{crafted.EXPECTED_CODE[c]}" for c in CASES} <= set(stats)


# ---- the archive level ---------------------------------------------------------------------------------------------

def test_zero_block_then_end_of_file_is_an_end_marker(tmp_path: Path) -> None:
    shard = crafted.write(tmp_path / "one_zero.tar", crafted.pair(1), trailer=b"\0" * 512)
    assert [type(e).__name__ for e in iter_entries(shard)] == ["Sample"]


def test_data_after_the_end_marker_is_truncated_tar(tmp_path: Path) -> None:
    good = crafted.pair(1)
    shard = crafted.write(tmp_path / "after.tar", good, trailer=crafted.end() + crafted.pair(2)[0] + crafted.end())
    codes = [e.code for e in iter_entries(shard) if isinstance(e, Problem)]
    assert codes == ["truncated-tar"]


@pytest.mark.parametrize("mode", ["fail", "quarantine"])
def test_empty_tar_catalogs_to_an_empty_table(tmp_path: Path, mode: str) -> None:
    shard = crafted.empty_tar(tmp_path / "in" / "empty.tar")
    out = tmp_path / "cat.parquet"
    rc, _, err = cli(["catalog", str(shard), "-o", str(out), "--on-error", mode, "--workers", "1"])
    assert rc == 0, err
    assert len(pd.read_parquet(out)) == 0
    rc, _, err = cli(["validate", str(shard), "--workers", "1", "--no-progress"])
    assert rc == 0 and "0 sample(s)" in err


def test_general_and_fast_catalog_agree_on_crafted_json(tmp_path: Path) -> None:
    from gpic_lab.shards.catalog import scan_shard

    for case in crafted.JSON_CASES:
        shard = crafted.SHARD_CASES[case](tmp_path / case / "s.tar")
        fast, fast_problems = scan_shard(str(shard))
        slow, slow_problems = scan_shard(str(shard), fast=False)
        assert fast.equals(slow) and [p.line() for p in fast_problems] == [p.line() for p in slow_problems]


def test_member_names_with_control_characters_are_escaped(tmp_path: Path) -> None:
    shard = crafted.control_name(tmp_path / "ctl.tar")
    rc, out, _ = cli(["validate", str(shard), "--workers", "1", "--no-progress"])
    assert rc == 1
    lines = out.splitlines()
    assert len(lines) == 1 and "unsafe-member-name" in lines[0] and "\\n" in lines[0]
    assert not any(line.startswith("forged.tar") for line in lines)


def test_control_characters_never_break_the_one_line_errors(tmp_path: Path) -> None:
    from gpic_lab.errors import ShardError
    from gpic_lab.fo.records import Selection, select

    shard = crafted.control_name(tmp_path / "ctl.tar")
    rc, _, err = cli(["dedup", str(shard), "-o", str(tmp_path / "d.parquet"), "--encoder", "dhash",
                      "--cache", str(tmp_path / "cache")])
    assert rc == 1 and "unsafe-member-name" in _one_line_error(err, "dedup")
    with pytest.raises(ShardError) as exc:
        select([str(shard)], Selection())
    assert str(exc.value).isprintable() and "\\n" in str(exc.value)
    rc, _, err = cli(["pack", str(shard), "--out", str(tmp_path / "p"), "--shards", "1"])
    assert rc == 1 and "unsafe-member-name" in _one_line_error(err, "pack")
