"""Flickr collection against the 127.0.0.1 replay server replaying Flickr's documented behaviours: the 4,000-result
cap (repeated pages or error 20), `total` as a string, duplicate ids and shifting pages, transient error codes,
parameterless searches, size variants (crops, owner-restricted originals, extras names vs URL suffixes), key
redaction, and a collection past the cap that survives a kill -9 and a resume."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
from processes import kill_after_shard

from gpic_lab.collect import windows
from gpic_lab.collect.collector import collect_flickr, make_client
from gpic_lab.collect.flickr import check_size
from gpic_lab.collect.http import HttpClient, HttpError
from gpic_lab.collect.replay import ReplayItem, ReplayServer, bulk_flickr_catalog, default_catalog
from gpic_lab.collect.writer import read_provenance
from gpic_lab.core.licenses import FLICKR_PERMISSIVE_IDS
from gpic_lab.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
KEY = "replay-key"


def _client(**kw) -> HttpClient:
    return make_client(**{"rate": None, "retries": 3, "timeout": 5.0, "backoff": 0.01, "seed": 0, "concurrency": 4,
                          "time_scale": 0.01, **kw})


def _flickr(out: Path, srv: ReplayServer, **kw):
    return collect_flickr(out, base_url=srv.flickr_url, api_key=KEY, client=kw.pop("client", None) or _client(),
                          **{"per_page": 10, "shard_size": 25, **kw})


def _keys(out: Path) -> list[str]:
    from gpic_lab.shards.reader import iter_samples

    return [s.key for s in iter_samples(sorted((out / "shards").glob("*.tar")), images=False)]


def _image_requests(srv: ReplayServer) -> Counter:
    return Counter(e["path"] for e in srv.log if e["kind"] == "image")


def test_windows_split_sized_and_keyset_advance() -> None:
    cur = windows.start(100, 199, "4,9,10")
    assert windows.request_range(cur) == {"min_upload_date": "100", "max_upload_date": "199", "license": "4,9,10",
                                          "page": 1}
    split = windows.sized(cur, 5000, split_total=3000)
    assert [(w["lo"], w["hi"]) for w in split["windows"]] == [(100, 149), (150, 199)]  # inclusive halves
    assert windows.sized(windows.start(7, 7, "4,9,10"), 5000)["windows"][1]["lic"] == "9,10"  # by license
    assert windows.sized(windows.start(7, 7, "4"), 5000) is None  # cannot split: walked up to the cap
    small = windows.start(100, 199, "4")
    assert windows.sized(small, 20) is None and small["windows"][0]["sized"]
    nxt, capped = windows.advance(small, [100, 120, 130], pages=3, per_page=3)
    assert nxt["after"] == 130 and nxt["page"] == 1 and not capped  # keyset: restart at the last upload second
    tie, _ = windows.advance(nxt, [130, 130, 130], pages=4, per_page=3)
    assert tie["after"] == 130 and tie["page"] == 2  # a whole page in one second: page forward within it
    assert windows.advance(tie, [130], pages=2, per_page=3) == (None, False)  # last page of the last window
    at_cap = {**tie, "page": 4000 // 3}
    assert windows.advance(at_cap, [130, 130, 130], pages=9999, per_page=3) == (None, True)


@pytest.mark.parametrize("cap_mode", ["repeat", "error"])
def test_default_run_past_the_result_cap_collects_everything_once(tmp_path: Path, cap_mode: str) -> None:
    """Flickr lists at most `cap` results per query; past it pages repeat forever or error 20 answers. A default run
    (no text, whole upload history) must still collect every photo once, within a budget."""
    items = bulk_flickr_catalog(130, seed=1)
    with ReplayServer(items, api_key=KEY, flickr_cap=40, cap_mode=cap_mode) as srv:
        result = _flickr(tmp_path, srv, client=_client(budget=600), split_total=30)
        assert result.status == "done"
        keys = _keys(tmp_path)
        assert len(keys) == len(set(keys)) == 130 and set(keys) == srv.expected_keys("flickr")
        assert max(_image_requests(srv).values()) == 1  # no photo downloaded twice
        assert result.listing["windows_split"] >= 3 and result.counts == {"written": 130}
        pages = [e for e in srv.log if e["kind"] == "api"]
        assert all((int(e["q"]["page"]) - 1) * 10 < 40 for e in pages)  # never asked past the cap


def test_total_as_string_duplicate_ids_and_shifting_pages(tmp_path: Path) -> None:
    """Pages that start early on every request (photos repeat, the last ones are never reached by offsets) and
    equal upload times in a new order each time: every photo written once, repeats recognised by id."""
    items = bulk_flickr_catalog(61, seed=2)
    with ReplayServer(items, api_key=KEY, drift=4, unstable=True, total_as_string=True) as srv:
        answer = srv.flickr_search({"api_key": KEY, "method": "flickr.photos.search", "min_upload_date": "1"})
        assert answer["photos"]["total"] == "61"
        result = _flickr(tmp_path, srv)
        keys = _keys(tmp_path)
        assert result.status == "done" and len(keys) == len(set(keys)) == 61
        assert set(keys) == srv.expected_keys("flickr")
        assert max(_image_requests(srv).values()) == 1
        assert result.listing["repeats"] >= 1 and sum(result.counts.values()) == 61


def test_one_second_bursts_page_within_the_second_and_split_by_license(tmp_path: Path) -> None:
    """25 photos uploaded in one second with 10 per page: the walk pages forward inside the second. 60 photos in
    one second with a cap of 40: the one-second window is split by license ids and everything is reached."""
    with ReplayServer(bulk_flickr_catalog(70, burst=25, seed=3), api_key=KEY) as srv:
        result = _flickr(tmp_path / "tie", srv)
        assert result.status == "done" and set(_keys(tmp_path / "tie")) == srv.expected_keys("flickr")
        assert any(e["q"].get("page") == "2" for e in srv.log if e["kind"] == "api")
    with ReplayServer(bulk_flickr_catalog(90, burst=60, seed=4), api_key=KEY, flickr_cap=40) as srv:
        result = _flickr(tmp_path / "burst", srv, split_total=30)
        keys = _keys(tmp_path / "burst")
        assert result.status == "done" and len(keys) == 90 and set(keys) == srv.expected_keys("flickr")
        licenses = {e["q"]["license"] for e in srv.log if e["kind"] == "api"}
        assert {"4,7,8", "9,10,11"} <= licenses  # the one-second window was split by license ids
    with ReplayServer(bulk_flickr_catalog(90, burst=60, seed=4), api_key=KEY, flickr_cap=40) as srv:
        result = _flickr(tmp_path / "capped", srv, split_total=30, license_ids="4")
        assert result.status == "done" and result.listing["windows_capped"] == 0  # 10 photos of license 4: fits


def test_transient_error_codes_are_retried(tmp_path: Path) -> None:
    with ReplayServer(default_catalog(), api_key=KEY) as srv:
        for fault in ("flickr-105", "flickr-10", "flickr-106"):
            srv.inject("api", fault)
        result = _flickr(tmp_path, srv, client=_client(retries=4))
        assert result.status == "done" and srv.pending_faults() == 0
        assert {k: v for k, v in result.http["retries"].items() if k.startswith("flickr-")} == \
            {"flickr-105": 1, "flickr-10": 1, "flickr-106": 1}
        assert set(_keys(tmp_path)) == srv.expected_keys("flickr", FLICKR_PERMISSIVE_IDS)


def test_parameterless_search_is_a_usage_error(tmp_path: Path) -> None:
    with ReplayServer(default_catalog(), api_key=KEY) as srv:
        srv.flickr_search = lambda q: {"stat": "fail", "code": 3, "message": "Parameterless searches have been "
                                                                             "disabled."}
        with pytest.raises(UsageError, match=r"parameterless search \(code 3"):
            _flickr(tmp_path, srv)


def _sized_catalog() -> list[ReplayItem]:
    """A 450 px photo (no 'm' 500 px size; its original is 450 px), a 1411 px photo whose owner withholds the
    original (and everything above 1024 px), and a 120 px photo (only t, the two crops and the original)."""
    from PIL import Image

    from gpic_lab.collect.replay_catalog import encode

    def photo(i: int, w: int, h: int, restricted: bool = False) -> ReplayItem:
        body = encode(Image.new("RGB", (w, h), (40 * i, 90, 200 - 40 * i)), "jpg")
        return ReplayItem(f"8{i:09d}", "flickr", body, "jpg", "4", "", f"Owner {i}", f"Sized {i}",
                          1_600_000_000 + i, restricted=restricted)

    return [photo(1, 450, 300), photo(2, 1411, 940, restricted=True), photo(3, 120, 90)]


def test_sizes_largest_uncropped_not_above_requested_never_a_crop(tmp_path: Path) -> None:
    with ReplayServer(_sized_catalog(), api_key=KEY) as srv:
        got = {}
        for size in ("m", "l", "o"):
            srv.log.clear()
            _flickr(tmp_path / size, srv, size=size)
            got[size] = sorted(e["path"].rsplit("/", 1)[1] for e in srv.log if e["kind"] == "image")
    # m (500): the 450 px original, the withheld original's 'm' (no suffix), the 120 px original; never _q or _s
    assert got["m"] == ["8000000001_abc_o.jpg", "8000000002_abc.jpg", "8000000003_abc_o.jpg"]
    assert got["l"][1] == "8000000002_abc_b.jpg"  # extras 'l' is the 1024 px size, URL suffix b
    assert got["o"][1] == "8000000002_abc_b.jpg"  # original withheld: the largest size the owner allows
    for message, size in (("extras name is 'l'", "b"), ("square crop", "q"), ("square crop", "sq")):
        with pytest.raises(UsageError, match=message):
            check_size(size)


def test_api_key_redaction_catches_quote_plus_forms(tmp_path: Path) -> None:
    secret = "my key+with/odd chars"
    client = HttpClient(secrets=(secret,))
    for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
        assert client.redact(f"x?api_key={form}&y=1") == "x?api_key=***&y=1"
    with ReplayServer(default_catalog(), api_key=KEY) as srv:
        srv.inject("api", "500", count=2)
        with pytest.raises(HttpError) as info:
            collect_flickr(tmp_path, base_url=srv.flickr_url, api_key=secret, client=_client(retries=1))
    text = str(info.value)
    assert "api_key=***" in text and "key" + "+with" not in text and "my+key" not in text


_CHILD = """
import sys
from gpic_lab.collect.collector import collect_flickr, make_client
collect_flickr(sys.argv[1], base_url=sys.argv[2], api_key="replay-key", shard_size=400,
               client=make_client(rate=None, download_rate=400, backoff=0.01))
"""


@pytest.mark.slow
def test_collection_past_4000_results_survives_kill_and_resume(tmp_path: Path) -> None:
    """4,300 photos (one second holding 600 of them) behind Flickr's real 4,000-result cap, per_page 500: a child
    collecting them is killed with SIGKILL mid-run, a resume finishes, every photo is written exactly once."""
    items = bulk_flickr_catalog(4300, burst=600, seed=5)
    out = tmp_path / "big"
    with ReplayServer(items, api_key=KEY, cap_mode="error") as srv:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), srv.flickr_url], cwd=ROOT, env=env)
        kill_after_shard(child, out / "state.json", 2, timeout=120)
        result = collect_flickr(out, base_url=srv.flickr_url, api_key=KEY, shard_size=400,
                                client=make_client(rate=None, backoff=0.01))
        assert result.status == "done"
        keys = _keys(out)
        assert len(keys) == len(set(keys)) == 4300 and set(keys) == srv.expected_keys("flickr")
        prov = read_provenance(out)
        assert prov["source_id"].is_unique and set(prov["source_id"]) == {it.id for it in items}
        assert result.counts == {"written": 4300}
        assert all((int(e["q"]["page"]) - 1) * 500 < 4000 for e in srv.log if e["kind"] == "api")
