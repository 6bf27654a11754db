"""The embedding cache keys remote shards by URL, size and ETag/Last-Modified (served from 127.0.0.1)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpic_lab.dedup import embed, embed_cache
from gpic_lab.shards.sources import identity


class _Quiet(SimpleHTTPRequestHandler):
    strip_validators = False

    def log_message(self, *args: object) -> None:
        pass

    def send_header(self, keyword: str, value: str) -> None:
        if self.strip_validators and keyword.lower() in ("last-modified", "etag"):
            return
        super().send_header(keyword, value)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers = []

    def start(root: Path, validators: bool = True) -> str:
        handler = type("H", (_Quiet,), {"strip_validators": not validators})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_url_shards_are_cached_by_size_and_last_modified(tiny_shards, tmp_path: Path, serve) -> None:
    shards = tiny_shards(n_shards=2, per_shard=2)
    base = serve(tmp_path)
    urls = [f"{base}/gpic_train_{{00000..00001}}.tar"]
    enc = embed.load_encoder("dhash")
    first, st1 = embed_cache.embed_shards(urls, enc, tmp_path / "cache")
    second, st2 = embed_cache.embed_shards(urls, enc, tmp_path / "cache", load_vectors=False)
    assert st1 == {"cache_hits": 0, "cache_misses": 2} and st2 == {"cache_hits": 2, "cache_misses": 0}
    assert list(first.keys) == list(second.keys) and len(first) == 4
    ident = identity(f"{base}/gpic_train_00000.tar")
    assert ident is not None and ident["size"] == str(shards[0].stat().st_size) and ident["modified"]
    os.utime(shards[0], (1_000_000_000, 1_000_000_000))  # same bytes, new Last-Modified: embedded again
    _, st3 = embed_cache.embed_shards(urls, enc, tmp_path / "cache")
    assert st3 == {"cache_hits": 1, "cache_misses": 1}


def test_a_url_without_validators_is_never_cached(tiny_shards, tmp_path: Path, serve) -> None:
    tiny_shards(n_shards=1, per_shard=2)
    url = f"{serve(tmp_path, validators=False)}/gpic_train_00000.tar"
    assert identity(url) is None
    enc = embed.load_encoder("dhash")
    for _ in range(2):
        emb, stats = embed_cache.embed_shards([url], enc, tmp_path / "cache", load_vectors=False)
        assert stats == {"cache_hits": 0, "cache_misses": 1} and emb.vectors.shape == (2, 64)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_dedup_command_runs_on_url_shards(tiny_shards, tmp_path: Path, serve) -> None:
    import subprocess
    import sys

    import pandas as pd

    tiny_shards(n_shards=2, per_shard=2)
    base = serve(tmp_path)
    out = tmp_path / "out" / "decisions.parquet"
    proc = subprocess.run([sys.executable, "-m", "gpic_lab.commands.cli", "dedup", f"{base}/gpic_train_{{00000..00001}}.tar",
                           "-o", str(out), "--encoder", "dhash", "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(out)) == 4
