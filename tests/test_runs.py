"""The strict papermill runner: parameter checks before any kernel, run records, skip/force, failures, fan-out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.runs.fanout import collect, fan_out, fanout_dir, parse_spec
from gpic_lab.runs.params import coerce, parse_parameters, resolve
from gpic_lab.runs.runner import default_run_id, run_notebook

TINY = Path(__file__).parent / "notebooks" / "tiny_range.ipynb"
CLI = [sys.executable, "-m", "gpic_lab.commands.cli"]


def test_parameters_are_parsed_and_typed() -> None:
    params = parse_parameters(json.loads(TINY.read_text()))
    assert list(params) == ["shards", "fail_marker", "log", "scale"]
    assert params["scale"].type is float and params["shards"].default == "0:3"
    assert "START:STOP" in params["shards"].help
    assert coerce(params["scale"], "2") == 2.0 and coerce(params["shards"], "5:9") == "5:9"
    for name, bad in (("scale", "abc"), ("scale", "[1]")):
        with pytest.raises(UsageError, match=name):
            coerce(params[name], bad)


def test_unknown_or_mistyped_parameter_exits_2_without_run_dir(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {"GPIC_LAB_RUNS": str(runs)}
    for args in (["-p", "shardz", "1:2"], ["-p", "scale", "many"]):
        proc = subprocess.run([*CLI, "run", str(TINY), *args], capture_output=True, text=True, env={**_env(), **env})
        assert proc.returncode == 2, proc.stderr
        assert "valid parameters" in proc.stderr or "expects a float" in proc.stderr
        assert not runs.exists()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.notebook
def test_run_records_skip_force_and_failure(tmp_path: Path) -> None:
    first = run_notebook(TINY, {"shards": "2:5"})
    assert first.status == "done"
    files = {p.name for p in first.run_dir.iterdir()}
    assert {"tiny_range.ipynb", "params.json", "env.json", "metrics.json", "DONE"} <= files
    assert json.loads((first.run_dir / "metrics.json").read_text())["total"] == 9.0
    env = json.loads((first.run_dir / "env.json").read_text())
    assert env["versions"]["gpic_lab"] and "git_commit" in env
    done_stamp = (first.run_dir / "DONE").read_text()
    again = run_notebook(TINY, {"shards": "2:5"})
    assert again.status == "skipped" and again.run_dir == first.run_dir
    assert (first.run_dir / "DONE").read_text() == done_stamp
    forced = run_notebook(TINY, {"shards": "2:5"}, force=True)
    assert forced.status == "done" and forced.run_dir == first.run_dir
    marker = tmp_path / "fail"
    marker.write_text("x")
    failed = run_notebook(TINY, {"shards": "1:2", "fail_marker": str(marker)}, quiet=True)
    assert failed.status == "failed" and "planted failure" in failed.message
    assert (failed.run_dir / "tiny_range.ipynb").exists() and not (failed.run_dir / "DONE").exists()


def test_run_id_changes_with_parameters_and_inputs(tmp_path: Path) -> None:
    a = default_run_id(TINY, resolve(TINY, {"log": str(tmp_path / "in.txt")}))
    (tmp_path / "in.txt").write_text("data")
    b = default_run_id(TINY, resolve(TINY, {"log": str(tmp_path / "in.txt")}))
    c = default_run_id(TINY, resolve(TINY, {"log": str(tmp_path / "in.txt"), "scale": "2"}))
    assert len({a, b, c}) == 3
    assert b == default_run_id(TINY, resolve(TINY, {"log": str(tmp_path / "in.txt")}))


def test_fan_out_spec() -> None:
    assert parse_spec("shards=0:250:100") == ("shards", [(0, 100), (100, 200), (200, 250)])
    for bad in ("shards", "shards=0:10", "shards=5:1:1", "shards=0:10:0"):
        with pytest.raises(UsageError):
            parse_spec(bad)


@pytest.mark.notebook
@pytest.mark.slow
def test_fan_out_resumes_only_unfinished_ranges_and_collects(tmp_path: Path) -> None:
    log, marker = tmp_path / "log.txt", tmp_path / "fail"
    marker.write_text("planted")
    over = {"log": str(log), "fail_marker": str(marker)}
    spec = "shards=0:6:2"
    # every range fails while the marker exists: an "interrupted" batch with nothing done
    first = fan_out(TINY, over, spec, jobs=2)
    assert [r.status for r in first] == ["failed"] * 3
    marker.unlink()
    second = fan_out(TINY, over, spec, jobs=2)
    assert [r.status for r in second] == ["done"] * 3
    (second[1].run_dir / "DONE").unlink()  # as if the middle range had been killed
    third = fan_out(TINY, over, spec, jobs=2)
    assert [r.status for r in third] == ["skipped", "done", "skipped"]
    assert sorted(log.read_text().splitlines()) == sorted(["0:2", "2:4", "4:6"] * 2 + ["2:4"])
    table = collect(fanout_dir(TINY, {k: v for k, v in resolve(TINY, over).items() if k != "shards"}, spec))
    assert list(table["total"]) == [1.0, 5.0, 9.0] and table["done"].all()


def test_collect_writes_any_metrics_a_notebook_records(tmp_path: Path) -> None:
    """Nested, empty, list-valued and per-range differently typed metrics all fit the Parquet table."""
    import pandas as pd

    recorded = [{"n": 1, "stages": {"quality": {"dropped": 3}}, "suggested": {}, "rounds": [1.5, 2.0], "what": 3},
                {"n": 2.5, "stages": {"quality": {"dropped": 0}}, "suggested": {}, "rounds": [], "what": "three"}]
    for i, metrics in enumerate(recorded):
        run = tmp_path / f"{i:06d}-{i + 1:06d}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps(metrics))
        (run / "DONE").write_text("")
    table = collect(tmp_path)
    stored = pd.read_parquet(tmp_path / "metrics.parquet")
    assert list(stored["stages.quality.dropped"]) == [3, 0] and list(stored["n"]) == [1.0, 2.5]
    assert [json.loads(v) for v in stored["rounds"]] == [[1.5, 2.0], []]
    assert list(stored["what"]) == ["3", "three"] and table["done"].all()


def test_bad_run_id_is_a_usage_error_before_any_directory(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for bad in ("../escape", "a/../../b", "/abs", "x/y/z"):
        proc = subprocess.run([*CLI, "run", str(TINY), "--run-id", bad], capture_output=True, text=True,
                              env={**_env(), "GPIC_LAB_RUNS": str(runs)})
        assert proc.returncode == 2 and "--run-id" in proc.stderr, proc.stderr
    assert not runs.exists() and not (tmp_path / "escape").exists()
    from gpic_lab.runs.runner import RUN_ID_RE

    assert RUN_ID_RE.match(f"{fanout_dir(TINY, {}, 'shards=-5:5:5').name}/{-5:06d}-{0:06d}")  # fan-out ids pass


def test_url_parameter_gets_a_stable_run_id() -> None:
    values = resolve(TINY, {"log": "s3://bucket/gpic/log.txt"})
    assert default_run_id(TINY, values) == default_run_id(TINY, dict(values))
    assert default_run_id(TINY, values) != default_run_id(TINY, resolve(TINY, {"log": "s3://bucket/other.txt"}))


def test_incomplete_or_truncated_executed_notebooks_are_not_done(tmp_path: Path) -> None:
    import nbformat

    from gpic_lab.runs.runner import executed_ok

    def write(cells: list) -> Path:
        path = tmp_path / "out.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
        return path

    ran = nbformat.v4.new_code_cell("x = 1", execution_count=1)
    assert executed_ok(write([ran, nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("")])) == (True, "")
    assert executed_ok(write([ran, nbformat.v4.new_code_cell("y = 2")]))[1] == "cell 1 did not execute"
    error = nbformat.v4.new_code_cell("1/0", execution_count=2,
                                      outputs=[nbformat.v4.new_output("error", ename="E", evalue="v", traceback=[])])
    assert executed_ok(write([ran, error]))[1] == "cell 1 raised an error"
    cut = tmp_path / "cut.ipynb"
    cut.write_text(write([ran]).read_text()[:40])
    ok, message = executed_ok(cut)
    assert not ok and "unreadable" in message


def test_fan_out_runs_at_most_one_range_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from gpic_lab.runs import fanout
    from gpic_lab.runs.runner import RunResult

    lock, active, peak, seen = threading.Lock(), {}, {}, []

    def fake_run(nb: Path, overrides: dict, run_id: str, force: bool, env: dict, quiet: bool,
                 execution_timeout: float | None = None) -> RunResult:
        gpu = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            active[gpu] = active.get(gpu, 0) + 1
            peak[gpu] = max(peak.get(gpu, 0), active[gpu])
            seen.append(overrides["shards"])
        time.sleep(0.02)
        with lock:
            active[gpu] -= 1
        return RunResult(Path(nb).name, run_id, "done", Path("/nonexistent") / run_id)

    monkeypatch.setattr(fanout, "run_notebook", fake_run)
    results = fanout.fan_out(TINY, {}, "shards=0:12:1", gpus=["0", "1", "3"])
    assert [r.status for r in results] == ["done"] * 12
    assert sorted(seen, key=lambda s: int(s.split(":")[0])) == [f"{i}:{i + 1}" for i in range(12)]
    assert peak == {"0": 1, "1": 1, "3": 1}  # every GPU used, never two ranges on one


def test_run_id_follows_every_path_of_a_comma_separated_parameter(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x.tar").write_text("1")
    values = resolve(TINY, {"log": f"{first},{second}"})
    before = default_run_id(TINY, values)
    assert default_run_id(TINY, values) == before
    (second / "y.tar").write_text("new input in the second directory")
    assert default_run_id(TINY, values) != before


def test_environment_without_git_still_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpic_lab.runs.runner import environment

    monkeypatch.setenv("PATH", "/nonexistent")  # no git, no nvidia-smi on PATH
    env = environment()
    assert env["git_commit"] is None and env["gpu"] == [] and env["versions"]["gpic_lab"]


def test_parameter_help_is_the_comment_not_a_hash_inside_a_string() -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                     "source": 'pattern: str = "a#b"  # regex on keys\nn: int = 2\n'}]}
    params = parse_parameters(nb)
    assert params["pattern"].default == "a#b" and params["pattern"].help == "regex on keys"
    assert params["n"].help == ""


def test_fan_out_command_strips_gpu_ids_and_collect_needs_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from gpic_lab.runs import fanout
    from gpic_lab.runs.runner import RunResult

    with pytest.raises(UsageError, match="no fan-out runs"):
        fanout.fan_out_command(str(TINY), {}, "shards=0:2:1", None, 1, False, True)
    gpus = []

    def fake_run(nb: Path, overrides: dict, run_id: str, force: bool, env: dict, quiet: bool,
                 execution_timeout: float | None = None) -> RunResult:
        gpus.append(env["CUDA_VISIBLE_DEVICES"])
        target = fanout_dir(TINY, {k: v for k, v in resolve(TINY, {}).items() if k != "shards"}, "shards=0:2:1")
        run = target / run_id.split("/")[1]
        run.mkdir(parents=True, exist_ok=True)
        (run / "DONE").write_text("ok")
        (run / "metrics.json").write_text(json.dumps({"total": 1.0}))
        return RunResult(Path(nb).name, run_id, "done", run)

    monkeypatch.setattr(fanout, "run_notebook", fake_run)
    assert fanout.fan_out_command(str(TINY), {}, "shards=0:2:1", " 0, 1 ", 1, False, False) == 0
    assert sorted(gpus) == ["0", "1"]
    assert "000000-000001" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["[]", '{"cells": 3}', "not json"])
def test_a_file_that_is_not_a_notebook_is_a_usage_error(tmp_path: Path, text: str) -> None:
    from gpic_lab.runs.params import load_notebook

    bad = tmp_path / "x.ipynb"
    bad.write_text(text)
    with pytest.raises(UsageError, match="not a notebook"):
        load_notebook(bad)
    with pytest.raises(UsageError, match="not a notebook"):
        load_notebook(tmp_path)  # a directory
