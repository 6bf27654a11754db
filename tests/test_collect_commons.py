"""Wikimedia Commons collection against the 127.0.0.1 replay server replaying MediaWiki's and CommonsMetadata's
documented behaviours: property continuation past 50 thumbnails, thumbmime / thumberror, extmetadata without
Artist, the license flags, maxlag / ratelimited / readonly answers, and Wikimedia's User-Agent and robot policies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gpic_lab.collect.collector import check_wikimedia_limits, collect_commons, make_client
from gpic_lab.collect.commons import COMMONS_API, wikimedia_user_agent
from gpic_lab.collect.http import HttpClient
from gpic_lab.collect.limits import TokenBucket
from gpic_lab.collect.replay import ReplayServer, bulk_commons_catalog, default_catalog
from gpic_lab.collect.writer import read_provenance
from gpic_lab.core.licenses import check_flags, normalize
from gpic_lab.errors import UsageError
from gpic_lab.filters.license import license_stage

CONTACT = "gpic-lab-tests@example.org"


@pytest.fixture(scope="module")
def catalog() -> list:
    return default_catalog()


def _client(**kw) -> HttpClient:
    return make_client(**{"rate": None, "retries": 3, "timeout": 5.0, "backoff": 0.01, "seed": 0, "concurrency": 2,
                          "time_scale": 0.01, **kw})


def _commons(out: Path, srv: ReplayServer, **kw):
    client = kw.pop("client", None) or _client()
    return collect_commons(out, base_url=srv.commons_url, client=client, contact=CONTACT, **kw)


def _samples(out: Path) -> list:
    from gpic_lab.shards.reader import iter_samples

    return list(iter_samples(sorted((out / "shards").glob("*.tar"))))


def test_property_continuation_past_50_thumbnails_writes_each_file_once(tmp_path: Path) -> None:
    """With a thumbnail size the API transforms 50 files per request and continues with iicontinue over the same
    batch: a 120-file batch takes three requests, and each file is written exactly once."""
    with ReplayServer(bulk_commons_catalog(130)) as srv:
        result = _commons(tmp_path, srv, limit=120, category="Bulk files", thumb_width=640)
        api = [e["q"] for e in srv.log if e["kind"] == "api"]
        assert result.status == "done" and result.counts == {"written": 130}
        keys = [s.key for s in _samples(tmp_path)]
        assert len(keys) == len(set(keys)) == 130 and set(keys) == srv.expected_keys("wikimedia")
        assert sum("iicontinue" in q for q in api) == 2 and result.pages == 2  # 120 = 50 + 50 + 20, then 10
        assert Counter(e["path"] for e in srv.log if e["kind"] == "image").most_common(1)[0][1] == 1


def test_thumbmime_svg_tiff_thumbnails_and_thumberror(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog) as srv:
        result = _commons(tmp_path, srv, category="Special files")
        images = [e["path"] for e in srv.log if e["kind"] == "image"]
        assert all("thumbmime" in e["q"]["iiprop"].split("|") for e in srv.log if e["kind"] == "api")
    titles = {s.meta["attribution"].split('"')[1]: s for s in _samples(tmp_path)}
    assert titles["Special drawing"].image_ext == "png" and titles["Special scan"].image_ext == "jpg"
    assert result.counts["thumb-error"] == 1 and "unsupported-mime" not in result.counts
    assert not any(p.startswith("/img/7102/o.") for p in images)  # a failed thumbnail never falls back to the original
    assert all("px-thumb." in p for p in images)
    assert set(titles) == {"Special drawing", "Special scan", "Special attribution"}


def test_author_is_artist_else_attribution_never_the_credit_source(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog) as srv:
        result = _commons(tmp_path, srv, category="Special files", permissive_only=False)
    records = {s.meta["attribution"].split('"')[1]: s.meta["attribution"] for s in _samples(tmp_path)}
    assert records["Special drawing"].startswith('"Special drawing" by Special Author 0 via Wikimedia Commons')
    assert "by Photo: Studio Attribution, CC BY 4.0 via" in records["Special attribution"]
    assert result.counts["author-missing"] == 1 and "Special credit only" not in records
    assert not any("Own work" in a for a in records.values())


def test_license_flags_reach_provenance_and_the_license_stage(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog) as srv:
        _commons(tmp_path, srv, category="Special files", permissive_only=False)
    prov = read_provenance(tmp_path).set_index("title")
    assert prov.at["Special nonfree", "nonfree"] == "true"
    assert prov.at["Special portrait", "restrictions"] == "personality"
    assert prov.at["Special drawing", "attribution_required"] == "true"
    assert prov.at["Special drawing", "copyrighted"] == "True" and prov.at["Special drawing", "size"] == "640px"
    samples = _samples(tmp_path)
    title = {s.key: s.meta["attribution"].split('"')[1] for s in samples}

    def dropped(params: dict) -> dict:
        return {title[d.key]: d.reason for d in license_stage(samples, params) if not d.keep}

    assert dropped({}) == {"Special nonfree": "license-not-permissive", "Special portrait": "license-restricted"}
    assert dropped({"allow_restrictions": True}) == {"Special nonfree": "license-not-permissive"}
    assert dropped({"provenance": False}) == {}
    cc_by = normalize("CC BY 4.0")
    assert check_flags({"copyrighted": "False"}, cc_by)[0][0] == "license-unknown"
    assert check_flags({"copyrighted": "False"}, normalize("Public domain")) == []


def test_maxlag_ratelimited_readonly_are_waited_out_and_maxlag_is_always_sent(catalog: list, tmp_path: Path) -> None:
    with ReplayServer(catalog, maxlag_retry_after=2) as srv:
        for fault in ("maxlag", "ratelimited", "readonly"):
            srv.inject("api", fault)
        client = _client(retries=4)
        result = _commons(tmp_path, srv, client=client, limit=8)
        api = [e for e in srv.log if e["kind"] == "api"]
    assert result.status == "done" and {k: result.http["retries"][k] for k in ("maxlag", "ratelimited", "readonly")} \
        == {"maxlag": 1, "ratelimited": 1, "readonly": 1}
    assert client.stats.retry_after == [2.0, 2.0, 2.0]  # each answer's Retry-After honoured (scaled in tests)
    assert all(e["q"].get("maxlag") == "5" for e in api)
    assert all(e["accept_encoding"] == "gzip" for e in srv.log)  # and the gzip answers were decoded
    assert result.counts["written"] == len(srv.expected_keys("wikimedia"))


def test_user_agent_needs_a_contact(catalog: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIC_LAB_CONTACT", raising=False)
    with pytest.raises(UsageError, match="give --contact URL_OR_EMAIL or set GPIC_LAB_CONTACT"):
        wikimedia_user_agent()
    with pytest.raises(UsageError, match="must be a URL"):
        wikimedia_user_agent("bob")
    with pytest.raises(UsageError, match="must contain a contact"):
        wikimedia_user_agent(user_agent="mybot/1.0")
    monkeypatch.setenv("GPIC_LAB_CONTACT", "https://example.org/gpic")
    assert wikimedia_user_agent().startswith("gpic-lab-collect/0.2 (https://example.org/gpic) python-urllib/")
    with ReplayServer(catalog, ua_policy=("api", "image")) as srv:
        result = collect_commons(tmp_path / "ok", base_url=srv.commons_url, client=_client(), category="Sample images")
        assert result.status == "done" and {e["ua"] for e in srv.log} == {wikimedia_user_agent()}
    env = {k: v for k, v in os.environ.items() if k != "GPIC_LAB_CONTACT"}
    cmd = [sys.executable, "-m", "gpic_lab.commands.cli", "collect", "commons", "--out", str(tmp_path / "cli"), "--base-url",
           "http://127.0.0.1:9/w/api.php"]
    for extra, message in (([], "Wikimedia requires contact information in the User-Agent"),
                           (["--user-agent", "mybot/1.0"], "must contain a contact URL or email")):
        proc = subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr


def test_robot_policy_limits_for_the_media_host(catalog: list, tmp_path: Path) -> None:
    ok = make_client(concurrency=2, bandwidth_mbps=25)
    check_wikimedia_limits(ok, COMMONS_API)
    for client, message in ((make_client(concurrency=3, bandwidth_mbps=25), "at most 2 concurrent"),
                            (make_client(concurrency=2), "at most 25 Mbps")):
        with pytest.raises(UsageError, match=message):
            check_wikimedia_limits(client, COMMONS_API)
    check_wikimedia_limits(make_client(concurrency=16), "http://127.0.0.1:1/w/api.php")  # not Wikimedia: no policy
    with ReplayServer(bulk_commons_catalog(40), latency_s=0.02) as srv:
        result = collect_commons(tmp_path, base_url=srv.commons_url, contact=CONTACT, category="Bulk files")
        assert result.counts == {"written": 40} and srv.max_active["image"] == 2  # the default client: 2 at once
    bucket = TokenBucket(1000, burst_s=0.1)  # 1,000 bytes/s with 100 bytes of burst
    assert bucket.take(50) == 0.0 and bucket.take(250) > 0.1  # 200 bytes over budget: ~0.2 s
