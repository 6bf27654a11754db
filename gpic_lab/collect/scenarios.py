"""The APIs' awkward behaviours, each replayed by the local replay server (127.0.0.1) against a small collection:
one row per scenario saying what happened. For notebook 02 (`scenario_table`) and for a quick look at a change.

Scenarios: flickr-cap-repeat / flickr-cap-error (the 4,000-result cap, scaled to 40: repeated pages or error 20),
flickr-shifting-pages (pages start early, equal upload times reorder), image-retry-after (5 images behind
`Retry-After: 3600`; collected by the rerun), image-ua-block (the image host refuses a User-Agent without contact;
the rerun with a contact collects everything), commons-continuation (120 files in one batch: 50 thumbnails per
request), commons-transient (maxlag, ratelimited, readonly answers), commons-metadata (SVG/TIFF thumbnails, a failed
thumbnail, a file without Artist, NonFree and restricted files).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

KEY = "replay-key"
CONTACT = "gpic-lab-replay@example.org"
TIME_SCALE = 0.0005  # Retry-After: 3600 -> 1.8 s


def _client(**kw: Any) -> Any:
    from gpic_lab.collect.collector import make_client

    return make_client(**{"rate": None, "retries": 3, "backoff": 0.01, "concurrency": 4, "time_scale": TIME_SCALE,
                          **kw})


def _flickr(srv: Any, out: Path, **kw: Any) -> Any:
    from gpic_lab.collect.collector import collect_flickr

    return collect_flickr(out, base_url=srv.flickr_url, api_key=KEY, client=kw.pop("client", None) or _client(),
                          **{"per_page": 10, **kw})


def _commons(srv: Any, out: Path, **kw: Any) -> Any:
    from gpic_lab.collect.collector import collect_commons

    return collect_commons(out, base_url=srv.commons_url, client=_client(concurrency=2), contact=CONTACT, **kw)


def _cap(mode: str) -> Callable[[Path], tuple[Any, Any]]:
    def scenario(out: Path) -> tuple[Any, Any]:
        from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog

        with ReplayServer(bulk_flickr_catalog(130, seed=1), api_key=KEY, flickr_cap=40, cap_mode=mode) as srv:
            return srv, _flickr(srv, out, split_total=30, client=_client(budget=600))
    return scenario


def _shifting(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog

    with ReplayServer(bulk_flickr_catalog(61, seed=2), api_key=KEY, drift=4, unstable=True) as srv:
        return srv, _flickr(srv, out)


def _retry_after(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog

    with ReplayServer(bulk_flickr_catalog(30, seed=3), api_key=KEY, long_retry_after=3600) as srv:
        srv.inject("image", "429-long", count=5)
        first = _flickr(srv, out, client=_client(concurrency=1))
        _wait_due(first)
        return srv, _rerun(first, _flickr(srv, out))


def _ua_block(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog

    with ReplayServer(bulk_flickr_catalog(45, seed=4), api_key=KEY, ua_policy=("image",)) as srv:
        first = _flickr(srv, out, per_page=30)
        _wait_due(first)
        agent = f"gpic-lab-collect/0.2 ({CONTACT})"
        return srv, _rerun(first, _flickr(srv, out, per_page=30, client=_client(user_agent=agent)))


def _continuation(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, bulk_commons_catalog

    with ReplayServer(bulk_commons_catalog(130)) as srv:
        return srv, _commons(srv, out, limit=120, category="Bulk files")


def _transient(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, bulk_commons_catalog

    with ReplayServer(bulk_commons_catalog(20), maxlag_retry_after=2) as srv:
        for fault in ("maxlag", "ratelimited", "readonly"):
            srv.inject("api", fault)
        return srv, _commons(srv, out, limit=8, category="Bulk files")


def _metadata(out: Path) -> tuple[Any, Any]:
    from gpic_lab.collect.replay import ReplayServer, default_catalog

    with ReplayServer(default_catalog()) as srv:
        return srv, _commons(srv, out, category="Special files")


SCENARIOS: dict[str, Callable[[Path], tuple[Any, Any]]] = {
    "flickr-cap-repeat": _cap("repeat"), "flickr-cap-error": _cap("error"), "flickr-shifting-pages": _shifting,
    "image-retry-after": _retry_after, "image-ua-block": _ua_block, "commons-continuation": _continuation,
    "commons-transient": _transient, "commons-metadata": _metadata,
}


def _wait_due(result: Any) -> None:
    wait = result.pending.get("next_retry_in_s")
    if wait:
        time.sleep(wait + 0.05)


def _rerun(first: Any, second: Any) -> Any:
    second.extra["first"] = {"status": first.status, "pending": first.pending.get("count", 0)}
    return second


def scenario_table(out: str | os.PathLike[str], names: Sequence[str] | None = None) -> Any:
    """Run the named scenarios (default all) into `out/<name>/` and return one row per scenario: final status,
    images written, other counts, deferred downloads of a first run, retries, API calls, image requests and
    repeated successful downloads of one URL (0 when every photo is fetched once)."""
    import pandas as pd

    names = list(names or SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UsageError(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    rows = []
    for name in names:
        target = Path(out) / name
        shutil.rmtree(target, ignore_errors=True)
        srv, result = SCENARIOS[name](target)
        first = result.extra.get("first", {})
        fetched = Counter(e["path"] for e in srv.log if e["kind"] == "image" and e["status"] == 200)
        rows.append({"scenario": name, "status": result.status, "written": result.counts.get("written", 0),
                     "counted": ", ".join(f"{k}×{v}" for k, v in result.counts.items() if k != "written"),
                     "first_run": f"{first['status']}, {first['pending']} pending" if first else "",
                     "retries": ", ".join(f"{k}×{v}" for k, v in sorted(result.http["retries"].items())),
                     "api_calls": sum(e["kind"] == "api" for e in srv.log),
                     "image_requests": sum(e["kind"] == "image" for e in srv.log),
                     "repeated_downloads": sum(v - 1 for v in fetched.values()),
                     "windows_split": result.listing.get("windows_split", 0)})
    return pd.DataFrame(rows).set_index("scenario")
