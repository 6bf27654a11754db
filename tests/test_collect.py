"""Source collection against the 127.0.0.1 replay server: faults, resume after crashes and a SIGKILL, bad keys,
byte dedup, budgets, and URLs never in shards. (The Flickr/Commons API behaviours, deferred downloads and limits
have their own files: test_collect_flickr.py, test_collect_commons.py, test_collect_downloads.py.)"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from processes import kill_after_shard

from gpic_lab.collect.collector import collect_commons, collect_flickr, make_client
from gpic_lab.collect.http import BadApiKey, HttpClient, HttpError, retry_after
from gpic_lab.collect.replay import ReplayServer, default_catalog, pick_size
from gpic_lab.collect.writer import PROVENANCE_COLUMNS, read_provenance
from gpic_lab.core.licenses import FLICKR_PERMISSIVE_IDS, normalize
from gpic_lab.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
KEY = "replay-key"
CONTACT = "gpic-lab-tests@example.org"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def catalog() -> list:
    return default_catalog()


@pytest.fixture
def server(catalog: list):
    with ReplayServer(list(catalog), api_key=KEY, retry_after=1, timeout_s=1.0) as srv:
        yield srv


def _client(**kw) -> HttpClient:
    """One download at a time (injected faults hit a known request), deferral waits scaled by 0.01."""
    return make_client(**{"rate": None, "retries": 4, "timeout": 5.0, "backoff": 0.01, "seed": 0, "concurrency": 1,
                          "time_scale": 0.01, **kw})


def _commons(out: Path, srv: ReplayServer, client: HttpClient | None = None, **kw):
    return collect_commons(out, base_url=srv.commons_url, client=client or _client(), contact=CONTACT, **kw)


def _flickr(out: Path, srv: ReplayServer, client: HttpClient | None = None, **kw):
    return collect_flickr(out, base_url=srv.flickr_url, api_key=KEY, client=client or _client(),
                          **{"per_page": 5, "shard_size": 4, **kw})


def _shard_samples(out: Path) -> list:
    from gpic_lab.shards.reader import iter_samples

    shards = sorted((out / "shards").glob("*.tar"))
    return list(iter_samples(shards)) if shards else []


def _keys(out: Path) -> list[str]:
    return [s.key for s in _shard_samples(out)]


def test_flickr_clean_collection_writes_gpic_records(server: ReplayServer, tmp_path: Path) -> None:
    from PIL import Image

    from gpic_lab.shards.schema import FIELDS, check_meta

    result = _flickr(tmp_path, server)
    assert result.status == "done"
    samples = _shard_samples(tmp_path)
    keys = [s.key for s in samples]
    assert len(keys) == len(set(keys)) and set(keys) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    assert result.counts["written"] == len(keys)
    assert result.counts["duplicate-bytes"] == 1 and result.counts["not-an-image"] == 1
    listed = [it for it in server.items if it.source == "flickr" and int(it.license) in FLICKR_PERMISSIVE_IDS]
    assert sum(result.counts.values()) == len(listed)  # every listed photo is written or counted with a reason
    assert result.http["hosts"] == ["127.0.0.1"]
    for s in samples:
        meta = s.meta
        assert list(meta) == list(FIELDS)
        assert meta["key"] == s.key == hashlib.sha256(s.image).hexdigest()
        assert (meta["img_width"], meta["img_height"]) == Image.open(io.BytesIO(s.image)).size
        assert meta["caption"] == "" and meta["caption_type"] == "" and meta["split"] == []
        assert ISO_Z.match(meta["retrieved_at"])
        lic = normalize(meta["license"], meta["license_url"])
        assert lic.permissive, meta
        assert meta["attribution"].endswith(f"via Flickr ({lic.label})")
        assert check_meta(meta, require_caption=False) == []
    # each photo in the largest uncropped size not above z (640 px): the original when o_dims shows it is not
    # larger, never a square crop; photo 3's owner withholds the original, its z variant is taken
    by_id = {it.id: it for it in server.items}
    for e in server.log:
        if e["kind"] == "image":
            item_id, name = e["path"].split("/")[2:4]
            suffix = name.split(".")[0].split("_")[2] if name.count("_") == 2 else ""
            assert suffix == {"o": "o", "z": "z"}[pick_size(by_id[item_id], "z")], (item_id, name)
    assert hashlib.sha256(server.variant(server.items[3], "z")).hexdigest() in keys


def test_small_size_variant(server: ReplayServer, tmp_path: Path) -> None:
    result = _flickr(tmp_path, server, size="n")
    assert result.counts["written"] >= 15
    sides = [(s.meta["img_width"], s.meta["img_height"]) for s in _shard_samples(tmp_path)]
    assert max(max(wh) for wh in sides) == 320 and all(w != h for w, h in sides if max(w, h) < 320)


def test_urls_only_in_provenance_never_in_shards(server: ReplayServer, tmp_path: Path) -> None:
    _flickr(tmp_path / "f", server)
    _commons(tmp_path / "c", server, category="Sample images", limit=5, shard_size=4)
    for out in (tmp_path / "f", tmp_path / "c"):
        prov = read_provenance(out)
        assert list(prov.columns) == list(PROVENANCE_COLUMNS)
        assert sorted(prov["key"]) == sorted(_keys(out))
        assert prov["image_url"].str.startswith(server.url + "/img/").all()
        for tar in (out / "shards").glob("*.tar"):
            data = tar.read_bytes()
            for needle in (b"127.0.0.1", b"/img/", b"flickr.com/photos", b"wikimedia.org/wiki/File", b"User:"):
                assert needle not in data, (tar.name, needle)


def test_faults_are_retried_and_nothing_is_lost(server: ReplayServer, tmp_path: Path) -> None:
    for target, fault in [("api", "429"), ("api", "500"), ("api", "malformed-json"), ("api", "truncate"),
                          ("api", "timeout"), ("image", "503"), ("image", "truncate"), ("image", "timeout"),
                          ("image", "500")]:
        server.inject(target, fault)
    client = _client(timeout=0.4, retries=6, time_scale=1.0)  # the five api faults hit the first page request
    result = _flickr(tmp_path, server, client)
    assert server.pending_faults() == 0
    assert set(_keys(tmp_path)) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    retries = result.http["retries"]
    assert retries == {"http-429": 1, "http-500": 2, "malformed-json": 1, "truncated-body": 2, "timeout": 2,
                       "http-503": 1}
    assert client.stats.retry_after == [1.0, 1.0]  # Retry-After of the 429 and the 503 honoured
    assert result.http["waited_s"] >= 2.0


def test_non_image_body_counted_and_exhausted_retries_deferred_not_lost(server: ReplayServer, tmp_path: Path) -> None:
    server.inject("image", "non-image")
    server.inject("image", "500", count=3)  # retries=2: three attempts, all fail -> deferred, retried later
    result = _flickr(tmp_path, server, _client(retries=2))
    expected = server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    keys = set(_keys(tmp_path))
    assert len(expected - keys) == 1 and keys < expected  # only the photo that got the non-image body
    assert result.counts["not-an-image"] == 2  # the served HTML page + the injected non-image body
    assert not any(k.startswith("download-") for k in result.counts) and result.pending["count"] == 0
    assert result.status == "done" and result.http["retries"]["http-500"] == 3
    assert result.counts["written"] == len(keys)


def test_retry_after_forms_and_limit() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9  # a past date: no wait
    with ReplayServer([], retry_after=3600) as srv:
        srv.inject("api", "429")
        client = HttpClient(retries=3, max_retry_after=10)
        with pytest.raises(HttpError, match="asked to wait 3600s"):
            client.get(srv.flickr_url, {"method": "x"}, parse_json=True)


def test_bad_key_is_a_clear_error_and_the_key_is_never_shown(server: ReplayServer, tmp_path: Path) -> None:
    secret = "s3cr3t-KEY-0042"
    with pytest.raises(BadApiKey, match=r"rejected the API key from \$FLICKR_API_KEY") as info:
        collect_flickr(tmp_path / "a", base_url=server.flickr_url, api_key=secret, client=_client())
    assert secret not in str(info.value)
    # the key is redacted from retry-exhausted errors too, and never stored in the state
    server.inject("api", "500", count=2)
    with pytest.raises(HttpError) as info2:
        collect_flickr(tmp_path / "b", base_url=server.flickr_url, api_key=secret, client=_client(retries=1))
    assert secret not in str(info2.value) and "api_key=***" in str(info2.value)
    for path in (tmp_path / "b").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()
    # CLI: exit 2, one line, no key; a missing variable names the variable
    env = {**os.environ, "FLICKR_API_KEY": secret}
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "collect", "flickr", "--out", str(tmp_path / "cli"), "--rate", "0",
           "--base-url", server.flickr_url]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and secret not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("gpic-lab collect: error: Flickr rejected the API key")
    env.pop("FLICKR_API_KEY")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "set the FLICKR_API_KEY environment variable" in proc.stderr


def test_budget_stops_cleanly_and_resumes(server: ReplayServer, tmp_path: Path) -> None:
    runs = []
    for _ in range(20):
        result = _flickr(tmp_path, server, _client(budget=7))
        runs.append(result.status)
        if result.status == "done":
            break
    assert runs[0] == "budget" and runs[-1] == "done" and len(runs) > 2
    keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) and set(keys) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["done"] and state["spool"] == [] and state["counts"]["written"] == len(keys)
    assert _flickr(tmp_path, server).status == "done"  # a finished collection is not redone
    assert len(_keys(tmp_path)) == len(keys)


class Crash(Exception):
    pass


def _crash_after_second_call(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, point: str) -> None:
    """Let `owner.name` finish its second call (the file is written), then crash."""
    real, calls = getattr(owner, name), Counter()

    def wrapper(*args: object) -> object:
        out = real(*args)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash(point)
        return out

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize("point", ["download", "shard-written", "provenance-written"])
def test_crash_at_any_point_resumes_without_loss_or_duplicates(server: ReplayServer, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    import gpic_lab.collect.writer as writer_mod
    import gpic_lab.shards.writer as shardwriter

    calls = Counter()
    if point == "download":
        real_get = HttpClient.get

        def get(self, url, params=None, parse_json=False, **kw):
            calls["n"] += 1
            if "/img/" in url and calls["n"] == 9:
                raise Crash(point)
            return real_get(self, url, params, parse_json, **kw)

        monkeypatch.setattr(HttpClient, "get", get)
    elif point == "shard-written":
        _crash_after_second_call(monkeypatch, shardwriter, "write_shard", point)
    else:
        _crash_after_second_call(monkeypatch, writer_mod, "write_parquet_atomic", point)
    with pytest.raises(Crash):
        _flickr(tmp_path, server, shard_size=3, per_page=4)
    monkeypatch.undo()
    result = _flickr(tmp_path, server, shard_size=3, per_page=4)
    assert result.status == "done"
    keys = _keys(tmp_path)
    assert len(keys) == len(set(keys)) and set(keys) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    assert result.counts["written"] == len(keys) and result.counts["duplicate-bytes"] == 1
    assert sorted(read_provenance(tmp_path)["key"]) == sorted(keys)
    assert not list((tmp_path / ".spool").glob("*"))


_CHILD = """
import sys
from gpic_lab.collect.collector import collect_flickr, make_client
collect_flickr(sys.argv[1], base_url=sys.argv[2], api_key="replay-key", per_page=4, shard_size=3,
               client=make_client(rate=12, download_rate=12, backoff=0.01))
"""


def test_sigkill_mid_collection_then_resume(server: ReplayServer, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), server.flickr_url], cwd=ROOT)
    state = out / "state.json"
    kill_after_shard(child, state, 1)
    result = _flickr(out, server, shard_size=3, per_page=4)
    assert result.status == "done"
    keys = _keys(out)
    assert len(keys) == len(set(keys)) and set(keys) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)
    assert result.counts["written"] == len(keys)


def test_commons_allimages_and_category(server: ReplayServer, tmp_path: Path) -> None:
    result = _commons(tmp_path / "all", server, limit=4, shard_size=5)
    assert result.status == "done" and result.pages == 6  # 23 files, 4 per page, continue tokens followed
    keys = _keys(tmp_path / "all")
    assert len(keys) == len(set(keys)) and set(keys) == server.expected_keys("wikimedia")
    assert result.counts["unsupported-mime"] == 1  # the PDF
    # CC BY-SA x4, GFDL x2 and the NonFree file, filtered before download
    assert result.counts["license-not-permissive"] == 7 and result.counts["license-restricted"] == 1
    assert result.counts["thumb-error"] == 1 and result.counts["author-missing"] == 1
    samples = _shard_samples(tmp_path / "all")
    assert all(s.meta["attribution"].startswith(('"Sample file', '"Special')) and "via Wikimedia Commons ("
               in s.meta["attribution"] for s in samples)
    assert {s.image_ext for s in samples} == {"jpg", "png"}
    # originals: SHA-1 checked, SVG/TIFF originals skipped; small thumbnails: declared width honoured
    originals = _commons(tmp_path / "orig", server, category="Sample images", originals=True)
    assert set(_keys(tmp_path / "orig")) == server.expected_keys("wikimedia", thumb=None, category="Sample images")
    thumbs = _commons(tmp_path / "thumb", server, category="Sample images", thumb_width=64)
    assert thumbs.counts["written"] == originals.counts["written"]
    assert max(max(s.meta["img_width"], s.meta["img_height"]) for s in _shard_samples(tmp_path / "thumb")) <= 64


def test_all_licenses_then_license_stage_drops_non_permissive(server: ReplayServer, tmp_path: Path) -> None:
    from gpic_lab.filters.license import license_stage

    result = _commons(tmp_path, server, permissive_only=False)
    # file 14 (CC BY-SA 3.0) repeats the bytes of file 01 (CC BY 4.0): the first copy wins, the twin is counted
    assert result.counts["duplicate-bytes"] == 1
    samples = _shard_samples(tmp_path)
    decisions = {d.key: d for d in license_stage(samples, {})}
    dropped = Counter((normalize(s.meta["license"]).family, decisions[s.key].reason)
                      for s in samples if not decisions[s.key].keep)
    # the NonFree and the personality-restricted CC BY files are dropped through the provenance flags
    assert dropped == {("CC-BY-SA", "license-not-permissive"): 3, ("GFDL", "license-not-permissive"): 2,
                       ("CC-BY", "license-not-permissive"): 1, ("CC-BY", "license-restricted"): 1}
    assert sum(d.keep for d in decisions.values()) == len(server.expected_keys("wikimedia"))


def test_sha1_mismatch_and_exact_duplicates(catalog: list, tmp_path: Path) -> None:
    import dataclasses

    items = [it for it in catalog if it.source == "wikimedia" and it.kind == "image"][:4]
    twin = dataclasses.replace(items[0], id="9999", title="Twin of file 00")  # same bytes, another file page
    with ReplayServer([*items, twin], api_key=KEY) as srv:
        original = srv.commons_query
        srv.commons_query = lambda q: _corrupt_sha1(original(q), "Sample file 01")
        result = _commons(tmp_path, srv, permissive_only=False, originals=True)
    assert result.counts["duplicate-bytes"] == 1 and result.counts["sha1-mismatch"] == 1
    assert len(_keys(tmp_path)) == 3


def _corrupt_sha1(answer: dict, title: str) -> dict:
    for page in answer.get("query", {}).get("pages", []):
        if title in page["title"]:
            page["imageinfo"][0]["sha1"] = "0" * 40
    return answer


def test_usage_errors_and_query_mismatch(server: ReplayServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="valid ids are 0-16"):
        _flickr(tmp_path, server, license_ids="4,99")
    with pytest.raises(UsageError, match="not a Flickr extras size name"):
        _flickr(tmp_path, server, size="xx")
    with pytest.raises(UsageError, match="expected an ISO date"):
        _flickr(tmp_path, server, min_upload_date="last tuesday")
    _flickr(tmp_path, server, max_items=2)
    with pytest.raises(UsageError, match="different query"):
        _flickr(tmp_path, server, size="n")


def test_item_limit_and_rate_limit(server: ReplayServer, tmp_path: Path) -> None:
    client = _client(rate=4)
    first = _flickr(tmp_path, server, client, max_items=3, per_page=2)
    assert first.status == "limit" and len(_keys(tmp_path)) == 3
    api = [e["t"] for e in server.log if e["kind"] == "api"]
    assert len(api) >= 2 and min(b - a for a, b in zip(api, api[1:], strict=False)) >= 0.2  # spaced to 4 calls/s
    rest = _flickr(tmp_path, server, per_page=2)
    assert rest.status == "done"
    assert set(_keys(tmp_path)) == server.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)


def test_cli_collect_and_status(server: ReplayServer, tmp_path: Path) -> None:
    env = {**os.environ, "FLICKR_API_KEY": KEY}
    base = [sys.executable, "-m", "gpic_lab.commands.cli", "collect"]
    commons = [*base, "commons", "--out", str(tmp_path), "--base-url", server.commons_url, "--rate", "0", "--limit",
               "4", "--contact", CONTACT]
    proc = subprocess.run([*commons, "--budget", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "rerun the same command to resume" in proc.stderr
    proc = subprocess.run(commons, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done"
    status = subprocess.run([*base, "status", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["done"] is True
    bad = subprocess.run([*base, "commons", "--out", str(tmp_path / "x"), "--budget", "-1"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("gpic-lab collect: error: --budget")


def test_report_collect_demo_and_url_leak_check(tmp_path: Path, sample_dir: Path) -> None:
    from gpic_lab.collect import report
    from gpic_lab.shards.writer import write_shard

    table = report.collect_demo(tmp_path, ["flickr", "commons"], max_items=3, faults="api:503",
                                permissive_only=True, sample=str(sample_dir))
    assert list(table.index) == ["flickr", "commons"]
    assert (table["written"] == 3).all() and (table["status"] == "limit").all()
    assert (table["retries"] >= 1).all() and set(table["hosts"]) == {"127.0.0.1"} and (table["pending"] == 0).all()
    records = report.collected_records(tmp_path)
    assert len(records) == 6 and set(records["source"]) == {"flickr", "wikimedia"}
    assert report.url_leaks(tmp_path) == 0
    # plant a leak: rewrite the flickr shard with the photo's image URL inside its attribution
    shard = next((tmp_path / "flickr" / "shards").glob("*.tar"))
    samples = _shard_samples(tmp_path / "flickr")
    url = read_provenance(tmp_path / "flickr").set_index("key").at[samples[0].key, "image_url"]
    leaked = {**samples[0].meta, "attribution": f"{samples[0].meta['attribution']} {url}"}
    write_shard(shard, [(samples[0].key, leaked, samples[0].image, samples[0].image_ext), *samples[1:]])
    assert report.url_leaks(tmp_path) == 1
    with pytest.raises(UsageError, match="unknown replay source"):
        report.collect_demo(tmp_path, ["instagram"])
    with pytest.raises(UsageError, match="bad fault"):
        report.collect_demo(tmp_path, ["flickr"], faults="api:teapot")


def test_report_confusion_and_scores(sample_dir: Path) -> None:
    import pandas as pd

    from gpic_lab.collect import report

    decisions = pd.DataFrame({
        "key": ["a", "b", "c", "d", "e"], "shard": ["s"] * 5, "keep": [True, False, False, True, False],
        "reason": [None, "license-unknown", "license-not-permissive", None, "attribution-missing"],
        "license": ["CC BY 2.0"] * 5, "license_family": ["CC-BY"] * 5, "source": ["flickr"] * 5})
    truth = pd.Series({"b": "license-unknown", "c": "license-url-mismatch", "d": "license-not-permissive"})
    table = report.confusion(decisions, truth)
    assert table.loc["clean", "kept"] == 1 and table.loc["clean", "attribution-missing"] == 1
    assert table.loc["license-url-mismatch", "license-not-permissive"] == 1
    assert table.loc["license-not-permissive", "kept"] == 1
    assert int(table.to_numpy().sum()) == 5
    score = report.scores(decisions, truth)
    assert (score["caught"], score["right_reason"], score["false_drops"]) == (2, 1, 1)
    real = report.load_truth(sample_dir / "ground_truth.csv")
    assert len(real) == 8 and set(real) >= {"license-not-permissive", "license-unknown"}
    with pytest.raises(UsageError, match="no ground truth"):
        report.load_truth(sample_dir / "missing.csv")
