"""`gpic-lab bench collect [--quick] [--images N] [--latency S] [--concurrency 1,2,4,8,16]`: a Flickr collection
against the local replay server, whose image answers are delayed like a CDN's round trip, at several download
concurrencies, vs a competent sequential downloader of the same URLs.

Ours: `collect_flickr` end to end (API listing at 1 call/s, downloads with their own per-host concurrency, full
decode, sha256, spool, shards + provenance). Baseline: a `requests.Session` (keep-alive) fetching the URLs ours
collected, one after the other, each checked (PIL header read + sha256) and written to a file. Both sides get the
same images behind the same latency; the baseline gets its URL list for free. Correctness: both sides must hold the
same set of sha256 keys (a mismatch prints ratio null with the reason in ``mismatch`` and exits 1).

Images: distinct JPEGs of GPIC's mean size (587 x 479, ~100 KB). OUR ASSUMPTION for the CDN: 50 ms per answer.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEY = "replay-key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=None, help="images to collect (default 1000; --quick 200)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each image answer is delayed (0.05)")
    parser.add_argument("--concurrency", default=None,
                        help="download concurrencies to measure (default 1,2,4,8,16; --quick 1,8); 'ours' is the "
                             "Flickr default 8 when measured, else the largest")


def catalog(n: int, size: tuple[int, int] = (587, 479)) -> list[Any]:
    """n distinct JPEGs of `size`: eight smooth noisy bases, each image with its index written as black/white
    16 x 16 cells along the top edge (distinct after JPEG quantisation)."""
    import numpy as np
    from PIL import Image

    from gpic_lab.collect.replay import ReplayItem
    from gpic_lab.collect.replay_catalog import encode

    rng = np.random.default_rng(0)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    bases = []
    for b in range(8):
        base = np.stack([(x * 255 // w + 31 * b) % 256, y * 255 // h, (x + y) * 255 // (w + h)], -1)
        bases.append(np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8))
    items = []
    for i in range(n):
        px = bases[i % 8].copy()
        for bit in range(20):
            px[:16, 16 * bit: 16 * bit + 16] = 255 if (i >> bit) & 1 else 0
        items.append(ReplayItem(f"7{i:09d}", "flickr", encode(Image.fromarray(px, "RGB"), "jpg"), "jpg", "4", "",
                                f"Bench {i % 7}", f"Bench {i}", 1_600_000_000 + 5 * i))
    return items


def ours(srv: Any, out: Path, concurrency: int) -> tuple[float, Any]:
    """Seconds for a full collection at `concurrency` downloads per host, and its result."""
    from gpic_lab.collect.collector import collect_flickr, make_client

    client = make_client(rate=1.0, concurrency=concurrency, backoff=0.05)
    start = time.perf_counter()
    result = collect_flickr(out, base_url=srv.flickr_url, api_key=KEY, client=client, shard_size=1000)
    return time.perf_counter() - start, result


def baseline(urls: list[str], out: Path) -> tuple[float, set[str]]:
    """Seconds for a sequential requests.Session download of `urls` (checked, hashed, written) and the keys."""
    import requests
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    keys = set()
    start = time.perf_counter()
    with requests.Session() as session:
        session.headers["User-Agent"] = "gpic-lab-bench-baseline/1.0 (https://example.org/bench)"
        for url in urls:
            resp = session.get(url, timeout=30)
            resp.raise_for_status()
            body = resp.content
            with Image.open(io.BytesIO(body)) as im:
                im.size  # noqa: B018 - header check, as a careful downloader does
            key = hashlib.sha256(body).hexdigest()
            (out / f"{key}.jpg").write_bytes(body)
            keys.add(key)
    return time.perf_counter() - start, keys


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gpic_lab.collect.replay import ReplayServer
    from gpic_lab.collect.writer import read_provenance
    from gpic_lab.errors import GpicError, UsageError

    n = args.images or (200 if args.quick else 1000)
    levels = sorted({int(c) for c in (args.concurrency or ("1,8" if args.quick else "1,2,4,8,16")).split(",")})
    if n < 1 or levels[0] < 1:
        raise UsageError("--images and every --concurrency must be >= 1")
    print(f"generating {n} images ...", file=sys.stderr)
    items = catalog(n)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gpic-bench-collect-") as tmp, \
            ReplayServer(items, api_key=KEY, latency_s=args.latency) as srv:
        for c in levels:
            seconds, result = ours(srv, Path(tmp) / f"ours_{c}", c)
            if result.counts != {"written": n}:
                raise GpicError(f"bench collect: ours at concurrency {c} ended {result.status} {result.counts}")
            rates[str(c)] = round(n / seconds, 1)
            print(f"ours, concurrency {c}: {rates[str(c)]} images/s", file=sys.stderr)
        prov = read_provenance(Path(tmp) / f"ours_{levels[-1]}")
        base_s, base_keys = baseline(list(prov["image_url"]), Path(tmp) / "baseline")
        print(f"baseline (sequential requests.Session): {n / base_s:.1f} images/s", file=sys.stderr)
        same = base_keys == set(prov["key"])
        image_kb = round(sum(len(it.body) for it in items) / n / 1024, 1)
    from gpic_lab.collect.limits import FLICKR_CDN_CONCURRENCY

    chosen = FLICKR_CDN_CONCURRENCY if FLICKR_CDN_CONCURRENCY in levels else levels[-1]
    best = rates[str(chosen)]
    out = {"name": "collect", "unit": "images/s (Flickr replay, end to end)", "ours": best,
           "baseline": round(n / base_s, 1), "ratio": round(best / (n / base_s), 2),
           "images": n, "image_kb": image_kb, "latency_s": args.latency, "ours_concurrency": chosen,
           "images_per_s_by_concurrency": rates, "same_keys": same,
           "hours_per_million_by_concurrency": {c: round(1e6 / r / 3600, 1) for c, r in rates.items()},
           "previous_design_images_per_s": 1.0}
    from gpic_lab.benches.record import gate

    return gate(out, [None if same else "ours and the baseline collected different images"])
