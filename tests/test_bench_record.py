"""Shared bench machinery: a correctness mismatch exits 1 with ratio null, every run is appended to the results
file with date, machine, commit and arguments, and the README table is generated from that file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.benches import record
from gpic_lab.commands.bench import available
from gpic_lab.commands.cli import main
from gpic_lab.errors import GpicError

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_planted_mismatch_exits_1_with_ratio_null_and_is_recorded(sample_dir: Path, capsys, monkeypatch,
                                                                      tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(record.RESULTS_ENV, str(results))
    # pack never ships a NOT VISIBLE. caption, the tarfile copy does: the two sides no longer carry the same samples
    shard = sample_dir / "raw" / "gpic_raw_captions.tar"
    rc = main(["bench", "pack", str(shard), "--shards", "2", "--repeat", "1", "--workers", "1", "--rounds", "1",
               "--no-dask", "--dir", str(tmp_path)])
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert rc == 1 and result["ratio"] is None
    assert "lacks 1 source sample" in result["mismatch"]
    assert err.strip().splitlines()[-1].startswith("gpic-lab bench: error: bench pack: correctness check failed")
    (line,) = _lines(results)
    assert line["ratio"] is None and line["mismatch"] == result["mismatch"]


def test_every_run_is_appended_with_date_machine_commit_and_args(capsys, monkeypatch, tmp_path: Path) -> None:
    results = tmp_path / "sub" / "results.jsonl"
    monkeypatch.setenv(record.RESULTS_ENV, str(results))
    args = ["bench", "catalog", "--quick", "--shards", "1", "--per-shard", "12", "--image-kb", "1", "--rounds", "1",
            "--dir", str(tmp_path)]
    assert main(args) == 0 and main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    first, second = _lines(results)
    assert second == {**printed, "recorded": second["recorded"]}
    rec = first["recorded"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["date"])
    assert rec["args"] == ["catalog", "--quick", *args[3:]]
    assert rec["machine"]["cpu"] and rec["machine"]["cores"] >= 1 and isinstance(rec["machine"]["gpus"], list)
    assert rec["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", rec["commit"])
    assert first["ratio"] > 0 and first["same_rows"] is True


def test_finish_refuses_a_result_without_the_contract_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(record.RESULTS_ENV, str(tmp_path / "r.jsonl"))
    with pytest.raises(GpicError, match="did not report"):
        record.finish({"name": "x", "unit": "u", "ours": 1.0}, ["x"])
    assert not (tmp_path / "r.jsonl").exists()
    assert record.gate({"ratio": 2.0}, [None, ""]) == {"ratio": 2.0}
    assert record.gate({}, ["a", None, "b"]) == {"mismatch": "a; b"}


def test_record_is_machinery_not_a_bench() -> None:
    assert "record" not in available() and {"catalog", "pack", "filters", "collect", "train"} <= set(available())


def _row(name: str, ratio: float | None, date: str, args: list[str], **extra) -> dict:
    return {"name": name, "unit": "samples/s", "ours": 1234.5, "baseline": 246.9, "ratio": ratio, **extra,
            "recorded": {"date": date, "machine": {"cpu": "AMD EPYC", "cores": 2, "gpus": []},
                         "commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "args": args}}


def test_table_groups_runs_newest_first_and_marks_failures() -> None:
    rows = [_row("catalog", 5.1, "2026-12-01T10:00:00Z", ["catalog", "--quick"], goal="ratio >= 5", goal_met=True),
            _row("catalog", 4.9, "2026-12-01T11:00:00Z", ["catalog", "--quick"], goal="ratio >= 5", goal_met=False),
            _row("catalog", None, "2026-12-01T12:00:00Z", ["catalog", "--quick"], mismatch="rows differ"),
            _row("catalog", 5.3, "2026-12-01T09:00:00Z", ["catalog", "--quick"]),
            _row("pack", 1.2, "2026-12-02T10:00:00Z", ["pack"])]
    table = record.render_table(rows).splitlines()
    assert table[0].startswith("| bench | command |") and len(table) == 4
    catalog = table[2]
    assert "`bench catalog --quick`" in catalog and "**failed**, 4.90×, 5.10×" in catalog and "5.30" not in catalog
    assert "ratio >= 5: met in 1/2" in catalog and "2 × AMD EPYC" in catalog and "`0123456789`" in catalog
    assert "1,234" in catalog and "247" in catalog and "2026-12-01" in catalog
    assert "`bench pack`" in table[3] and "1.20×" in table[3]
    older = {**rows[0], "ratio": 9.9, "recorded": {**rows[0]["recorded"], "commit": "f" * 40,
                                                   "date": "2026-11-30T10:00:00Z"}}
    assert "9.90" not in record.render_table([*rows, older])  # only the newest run's commit is summarised


def test_readme_update_and_check(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- BENCHES -->\n## Benchmarks\n\nIntro.\n\n| bench | old |\n|---|---|\n"
                      "<!-- /BENCHES -->\n\nAfter.\n")
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(_row("pack", 1.2, "2026-12-02T10:00:00Z", ["pack"])) + "\n")
    script = [sys.executable, str(ROOT / "scripts" / "bench_table.py"), "--results", str(results), "--readme",
              str(readme)]
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(script, capture_output=True).returncode == 0
    text = readme.read_text()
    assert "Intro." in text and "After." in text and "| old |" not in text and "1.20×" in text
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0


def test_the_readme_table_is_the_one_the_results_file_gives() -> None:
    rows = record.read_results(ROOT / "benchmarks" / "results.jsonl")
    assert rows, "benchmarks/results.jsonl holds no runs"
    assert record.update_readme(ROOT / "README.md", rows, check=True), \
        "README benchmark table out of date: run .venv/bin/python scripts/bench_table.py"
