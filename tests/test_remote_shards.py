"""Shards over HTTP from a local 127.0.0.1 server that replays faults (429, 503, a body cut before
Content-Length, a stalled response): the loader retries at the shard boundary, sees every sample exactly once,
counts the retries, and a shard that keeps failing ends as a one-line error naming the URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpic_lab.loader import stream as loader
from gpic_lab.shards.reader import ShardIndex, iter_entries, read_range


class _Server:
    """Serves files of a directory; `faults[name]` is a list of faults consumed one per GET of that file."""

    def __init__(self, root: Path) -> None:
        self.root, self.faults, self.gets = root, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                name = self.path.lstrip("/")
                outer.gets.append((name, self.headers.get("Range")))
                fault = outer.faults.get(name, []).pop(0) if outer.faults.get(name) else None
                path = outer.root / name
                if fault in (429, 503) or not path.is_file():
                    self.send_error(fault or 404)
                    return
                data = path.read_bytes()
                if fault == "stall":
                    time.sleep(1.5)
                start, end = 0, len(data)
                rng = self.headers.get("Range")
                if rng and fault != "no-range":
                    lo, hi = rng.split("=")[1].split("-")
                    start, end = int(lo), int(hi) + 1
                self.send_response(206 if rng and fault != "no-range" else 200)
                self.send_header("Content-Length", str(end - start))
                self.end_headers()
                body = data[start:end]
                self.wfile.write(body[: len(body) // 2] if fault == "cut" else body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(sample_dir: Path) -> Iterator[_Server]:
    srv = _Server(sample_dir / "train")
    yield srv
    srv.close()


def _keys(cfg: loader.StreamConfig) -> tuple[list[str], dict[str, int]]:
    keys, stats = [], {}
    for item in loader.iter_slot(cfg, epoch=0, slot=0, slots=1):
        if "__stats__" in item:
            stats = item["__stats__"]
        else:
            keys.append(item["key"])
    return keys, stats


def test_faults_are_retried_and_every_sample_comes_once(server: _Server, sample_dir: Path) -> None:
    names = sorted(p.name for p in (sample_dir / "train").glob("*.tar"))
    local, _ = _keys(loader.stream_config([str(sample_dir / "train")], shuffle_buffer=1))
    server.faults = {names[0]: [503, "cut"], names[-1]: [429]}
    cfg = loader.stream_config([f"{server.url}/{n}" for n in names], shuffle_buffer=1)
    keys, stats = _keys(cfg)
    assert sorted(keys) == sorted(local) and len(keys) == len(set(keys))
    assert stats.get("retried:read-error") == 3
    assert [g for g, _ in server.gets].count(names[0]) == 3  # 503, cut body, then the good GET


def test_cut_body_is_a_network_error_not_a_truncated_tar(server: _Server, sample_dir: Path) -> None:
    name = sorted(p.name for p in (sample_dir / "train").glob("*.tar"))[0]
    server.faults = {name: ["cut"]}
    problems = [e for e in iter_entries(f"{server.url}/{name}") if not hasattr(e, "image")]
    assert problems[0].code == "truncated-tar"  # then the half-read sample it cut, as its own problem
    assert problems[0].message.startswith("cannot read shard") and "connection closed after" in problems[0].message
    assert server.url in problems[0].message


def test_persistent_failure_and_timeout_raise_one_line_errors(server: _Server, sample_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    name = sorted(p.name for p in (sample_dir / "train").glob("*.tar"))[0]
    server.faults = {name: [503, 503]}
    cfg = loader.stream_config([f"{server.url}/{name}"], retries=1)
    with pytest.raises(loader.CorruptSampleError, match=r"503") as info:
        _keys(cfg)
    assert f"{server.url}/{name}" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setenv("GPIC_LAB_HTTP_TIMEOUT", "0.3")
    server.faults = {name: ["stall"]}
    problems = [e for e in iter_entries(f"{server.url}/{name}") if not hasattr(e, "image")]
    assert problems and "timed out" in problems[0].message


def test_random_access_by_range_request(server: _Server, sample_dir: Path) -> None:
    name = sorted(p.name for p in (sample_dir / "train").glob("*.tar"))[0]
    url = f"{server.url}/{name}"
    index = ShardIndex.build([url])
    key = index.keys()[-1]
    local = ShardIndex.build([str(sample_dir / "train" / name)]).get(key).image
    assert index.get(key).image == local
    assert server.gets[-1][1] is not None  # a Range request, not the whole shard
    server.faults = {name: ["no-range"]}  # a server that ignores Range still gives the right bytes
    row = index._rows[key]
    assert read_range(url, row.image_offset, row.image_size) == local
    server.faults = {name: ["cut"]}
    with pytest.raises(OSError, match="connection closed|got"):
        read_range(url, row.image_offset, row.image_size)


def test_bad_timeout_setting_is_a_usage_error(server: _Server, sample_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from gpic_lab.errors import UsageError

    name = sorted(p.name for p in (sample_dir / "train").glob("*.tar"))[0]
    for bad in ("abc", "0", "-3"):
        monkeypatch.setenv("GPIC_LAB_HTTP_TIMEOUT", bad)
        with pytest.raises(UsageError, match="GPIC_LAB_HTTP_TIMEOUT"):
            list(iter_entries(f"{server.url}/{name}"))
