"""Downloads against the 127.0.0.1 replay server: the deferred queue (a long Retry-After, a 403 block, exhausted
retries) retried later and on resume, exit codes and the pending summary, 404 as a final failure, and API calls and
downloads under separate limits with concurrent downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpic_lab.collect.base import Candidate
from gpic_lab.collect.collector import collect_flickr, make_client
from gpic_lab.collect.queue import DeferredQueue
from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog, default_catalog
from gpic_lab.core.licenses import FLICKR_PERMISSIVE_IDS

ROOT = Path(__file__).resolve().parents[1]
KEY = "replay-key"
CONTACT = "https://example.org/gpic-lab-tests"


@pytest.fixture(scope="module")
def catalog() -> list:
    return default_catalog()


def _cli(source: str, out: Path, srv: ReplayServer, *extra: str) -> subprocess.CompletedProcess:
    base = srv.flickr_url if source == "flickr" else srv.commons_url
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "collect", source, "--out", str(out), "--base-url", base, "--rate",
           "0", "--backoff", "0.01", "--retries", "2", *extra]
    env = {**os.environ, "FLICKR_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _summary(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _keys(out: Path) -> set[str]:
    from gpic_lab.shards.reader import iter_samples

    return {s.key for s in iter_samples(sorted((out / "shards").glob("*.tar")), images=False)}


def _wait_until_due(out: Path) -> None:
    due = max(e["not_before"] for e in json.loads((out / "state.json").read_text())["deferred"])
    time.sleep(max(0.0, due - time.time()) + 0.05)


def test_long_retry_after_defers_downloads_and_a_rerun_collects_them(catalog: list, tmp_path: Path) -> None:
    """Five images behind `Retry-After: 3600` (above the 300 s the client waits inline): not lost, pending, exit 4
    with a summary; a rerun once they are due writes them and exits 0. Time scaled by --time-scale 0.0005."""
    with ReplayServer(catalog, api_key=KEY, long_retry_after=3600) as srv:
        srv.inject("image", "429-long", count=5)
        first = _cli("flickr", tmp_path, srv, "--concurrency", "1", "--time-scale", "0.0005")
        summary = _summary(first)
        assert first.returncode == 4, first.stderr
        assert summary["status"] == "pending" and summary["pending"]["count"] == 5
        assert summary["pending"]["by_reason"] == {"http-429": 5}
        assert not any(k.startswith("download-") for k in summary["counts"])
        assert "5 download(s) pending (http-429 x5)" in first.stderr
        status = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "collect", "status", "--out", str(tmp_path)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert json.loads(status.stdout)["pending"]["count"] == 5
        _wait_until_due(tmp_path)
        second = _cli("flickr", tmp_path, srv, "--time-scale", "0.0005")
        assert second.returncode == 0, second.stderr
        assert _summary(second)["status"] == "done" and _summary(second)["pending"]["count"] == 0
        assert _keys(tmp_path) == srv.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)


def test_refused_downloads_stop_the_run_as_blocked_and_a_rerun_recovers(tmp_path: Path) -> None:
    """An image host that answers 403 to a User-Agent without contact: after 20 refusals in a row the run stops
    with exit 4 (not exit 0 with nothing collected); rerun with a contact, the pending downloads go first."""
    with ReplayServer(bulk_flickr_catalog(45, seed=8), api_key=KEY, ua_policy=("image",)) as srv:
        first = _cli("flickr", tmp_path, srv, "--time-scale", "0.001", "--per-page", "30")
        assert first.returncode == 4 and _summary(first)["status"] == "blocked"
        assert _summary(first)["pending"]["by_reason"] == {"http-403": 20} and "written" not in _summary(first)["counts"]
        assert "refused many downloads in a row (http-403); fix the cause" in first.stderr
        _wait_until_due(tmp_path)
        second = _cli("flickr", tmp_path, srv, "--time-scale", "0.001", "--per-page", "30", "--contact", CONTACT)
        assert second.returncode == 0, second.stderr
        assert _summary(second)["counts"] == {"written": 45} and _keys(tmp_path) == srv.expected_keys("flickr")
        retried = [e["path"] for e in srv.log if e["kind"] == "image" and CONTACT in e["ua"]][:20]
        assert {p.split("/")[2] for p in retried} == {it.id for it in srv.items[:20]}  # pending ones first


def test_gone_images_fail_for_good_and_the_failed_share_sets_the_exit_code(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog, api_key=KEY) as srv:
        srv.inject("image", "404")
        strict = _cli("flickr", tmp_path / "strict", srv, "--concurrency", "1")
        assert strict.returncode == 4 and _summary(strict)["counts"]["download-http-404"] == 1
        assert _summary(strict)["status"] == "done" and _summary(strict)["pending"]["count"] == 0
        assert "> --max-failed-share 1.0%" in strict.stderr
        srv.inject("image", "404")
        lenient = _cli("flickr", tmp_path / "lenient", srv, "--concurrency", "1", "--max-failed-share", "0.1")
        assert lenient.returncode == 0 and _summary(lenient)["failed_share"] < 0.1


def test_bare_429_and_exhausted_retries_are_deferred_within_the_run(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog, api_key=KEY) as srv:
        srv.inject("image", "429-bare", count=2)  # no Retry-After: backoff, then success
        srv.inject("image", "500", count=3)  # three attempts fail: deferred, retried at the end of the listing
        client = make_client(rate=None, retries=2, backoff=0.01, concurrency=1, time_scale=0.01)
        result = collect_flickr(tmp_path, base_url=srv.flickr_url, api_key=KEY, client=client, per_page=5)
        assert result.status == "done" and result.pending["count"] == 0
        assert result.http["retries"]["http-429"] == 2 and result.http["retries"]["http-500"] == 3
        assert _keys(tmp_path) == srv.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)


def test_api_calls_and_downloads_have_separate_limits(tmp_path: Path) -> None:
    """API calls at 2/s; 60 downloads 4 at a time (each answer delayed 20 ms like a CDN round trip), not one per
    API slot: the downloads overlap, the API calls stay spaced."""
    with ReplayServer(bulk_flickr_catalog(60, seed=7), api_key=KEY, latency_s=0.02) as srv:
        client = make_client(rate=2, concurrency=4, backoff=0.01)
        result = collect_flickr(tmp_path, base_url=srv.flickr_url, api_key=KEY, client=client, per_page=30)
        assert result.counts == {"written": 60} and result.http["by_kind"]["download"] == 60
        assert 2 <= srv.max_active["image"] <= 4  # never above the per-host limit
        api = [e["t"] for e in srv.log if e["kind"] == "api"]
        assert len(api) >= 2 and min(b - a for a, b in zip(api, api[1:], strict=False)) >= 0.45
        images = sorted(e["t"] for e in srv.log if e["kind"] == "image")
        assert (images[-1] - images[0]) < 0.5 * (len(api) + len(images))  # far less than one slot per request


def test_deferred_queue_rounds_and_summary() -> None:
    cand = Candidate("flickr", "42", "http://127.0.0.1/x.jpg", "", "a", "t", "CC BY 2.0", "")
    queue = DeferredQueue(max_tries=3, defer_s=10.0, time_scale=0.5)
    assert queue.fail(cand, "http-503", now=100.0) and queue.entries["42"].not_before == 105.0  # 10 s x 0.5
    assert queue.due(now=104.0) == [] and [e.cand.source_id for e in queue.due(now=105.0)] == ["42"]
    assert queue.fail(cand, "http-429", retry_after=3600.0, now=105.0)  # the server's wait wins
    assert queue.entries["42"].not_before == 105.0 + 1800.0 and queue.entries["42"].tries == 2
    assert queue.summary(now=105.0) == {"count": 1, "by_reason": {"http-429": 1}, "next_retry_in_s": 1800.0}
    restored = DeferredQueue(queue.as_json(), max_tries=3)
    assert restored.entries["42"].cand == cand
    assert not restored.fail(cand, "http-429", now=2000.0) and len(restored) == 0  # third round: failed for good


def test_scenario_table_replays_each_behaviour(tmp_path: Path) -> None:
    from gpic_lab.collect.scenarios import scenario_table
    from gpic_lab.errors import UsageError

    names = ["flickr-cap-error", "image-retry-after", "image-ua-block", "commons-continuation"]
    table = scenario_table(tmp_path, names)
    assert list(table.index) == names and (table["status"] == "done").all()
    assert (table["repeated_downloads"] == 0).all() and (table["counted"] == "").all()
    assert table["written"].tolist() == [130, 30, 45, 130]
    assert table.at["image-retry-after", "first_run"] == "pending, 5 pending"
    assert table.at["image-ua-block", "first_run"] == "blocked, 20 pending"
    assert table.at["flickr-cap-error", "windows_split"] >= 3
    with pytest.raises(UsageError, match="unknown scenario"):
        scenario_table(tmp_path, ["instagram"])


def test_collect_bench_runs_both_sides_on_the_same_images() -> None:
    import argparse

    from gpic_lab.benches import collect as bench

    out = bench.run(argparse.Namespace(images=12, latency=0.0, concurrency="1,2", quick=True))
    assert out["same_keys"] and out["ratio"] is not None and out["baseline"] > 0
    assert set(out["images_per_s_by_concurrency"]) == {"1", "2"} and out["ours_concurrency"] == 2
