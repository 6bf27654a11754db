"""`gpic-lab collect flickr|commons|replay|status`: collect images into GPIC shards (resumable), or serve the
offline replay API.

Exit codes: 0 done, or --max-items reached, with at most --max-failed-share of downloads failed or pending;
1 failure (state kept at the last commit; rerun to resume); 2 usage error, rejected API key, or no contact for
Wikimedia; 3 request budget spent (rerun to resume); 4 downloads failed or are pending beyond --max-failed-share,
or the image host refused downloads in a row (blocked); rerun to retry the pending downloads.

stdout's last line is a JSON summary; `pending` lists the deferred downloads (count, by reason, seconds until the
next retry is due), which the next run retries first.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

EXIT_BUDGET = 3
EXIT_DOWNLOADS = 4
EPILOG = ("exit codes: 0 done (or --max-items reached) with failed+pending downloads within --max-failed-share; "
          "1 failure (rerun to resume); 2 usage error / rejected key / no Wikimedia contact; 3 request budget spent "
          "(rerun to resume); 4 failed+pending downloads above --max-failed-share, or downloads blocked (rerun "
          "retries the pending ones). The JSON summary's 'pending' says what is deferred.")


def _common(p: argparse.ArgumentParser, concurrency: int, bandwidth: float | None) -> None:
    p.add_argument("-o", "--out", required=True, help="collection directory (shards/, provenance/, state.json)")
    p.add_argument("--base-url", default=None, help="API endpoint (default: the real API; e.g. the replay server)")
    p.add_argument("--budget", type=int, default=None, help="max HTTP requests for this invocation (retries count)")
    p.add_argument("--rate", type=float, default=1.0, help="max API calls per second (default 1; 0 = unlimited); "
                                                          "downloads have their own limits")
    p.add_argument("--concurrency", type=int, default=concurrency,
                   help=f"concurrent image downloads per host (default {concurrency})")
    p.add_argument("--bandwidth-mbps", type=float, default=bandwidth,
                   help=f"download bandwidth per host in Mbps (default {bandwidth or 'unlimited'}; 0 = unlimited)")
    p.add_argument("--download-rate", type=float, default=None, help="max image downloads per second (default: "
                                                                     "unlimited, bounded by concurrency)")
    p.add_argument("--retries", type=int, default=5, help="retries per request on 429/5xx/timeouts (default 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="socket timeout in seconds (default 30)")
    p.add_argument("--backoff", type=float, default=0.5, help="backoff base in seconds (default 0.5)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--max-items", type=int, default=None, help="stop after this many images written")
    p.add_argument("--max-failed-share", type=float, default=0.01,
                   help="exit 4 when more than this share of downloads failed or is pending (default 0.01)")
    p.add_argument("--all-licenses", action="store_true",
                   help="also collect non-permissive images (default: skip and count them before download)")
    p.add_argument("--user-agent", default=None, help="User-Agent header (for Wikimedia it must hold a contact)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="testing knob: multiplies every server-requested wait and deferral delay (default 1)")
    p.add_argument("-v", "--verbose", action="store_true", help="log retries, deferrals and pages to stderr")


def register(sub: argparse._SubParsersAction) -> None:
    from gpic_lab.collect.commons import CONTACT_ENV, DEFAULT_THUMB
    from gpic_lab.collect.flickr import DEFAULT_SIZE, SIZES
    from gpic_lab.collect.limits import (
        FLICKR_CDN_CONCURRENCY,
        WIKIMEDIA_MEDIA_CONCURRENCY,
        WIKIMEDIA_MEDIA_MBPS,
    )

    p = sub.add_parser("collect", help="collect images from Flickr / Wikimedia Commons into GPIC shards",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    f = verbs.add_parser("flickr", help="flickr.photos.search (key from $FLICKR_API_KEY)", epilog=EPILOG)
    _common(f, FLICKR_CDN_CONCURRENCY, None)
    f.add_argument("--license", default=None, help="Flickr license ids, e.g. 4,9,10 (default: GPIC's 4,7,8,9,10,11)")
    f.add_argument("--size", default=DEFAULT_SIZE,
                   help=f"Flickr extras size name ({' '.join(SIZES)}; default {DEFAULT_SIZE} = 640 px on the long "
                        "side, near GPIC's mean 479x587); the largest uncropped size not above it is taken")
    f.add_argument("--per-page", type=int, default=500, help="results per API page (1..500, default 500)")
    for name in ("min-upload-date", "max-upload-date", "min-taken-date", "max-taken-date"):
        f.add_argument(f"--{name}", default=None, help="ISO date or unix time")
    f.add_argument("--text", default=None, help="free-text search")
    f.add_argument("--tags", default=None, help="comma-separated tags")
    f.add_argument("--contact", default=None, help="contact URL or email for the User-Agent (optional for Flickr)")
    f.set_defaults(func=run)
    c = verbs.add_parser("commons", help="Wikimedia Commons files (a category, or all images)", epilog=EPILOG)
    _common(c, WIKIMEDIA_MEDIA_CONCURRENCY, WIKIMEDIA_MEDIA_MBPS)
    c.add_argument("--contact", default=None, help=f"contact URL or email for the User-Agent (required by Wikimedia; "
                                                   f"default ${CONTACT_ENV})")
    c.add_argument("--category", default=None, help="category name (without 'Category:'); default: allimages")
    c.add_argument("--start", default=None, help="allimages: start at this file name")
    c.add_argument("--limit", type=int, default=50, help="files per API page (1..500, default 50)")
    c.add_argument("--thumb-width", type=int, default=DEFAULT_THUMB,
                   help=f"thumbnails fitting this box (default {DEFAULT_THUMB}, near GPIC's mean 479x587)")
    c.add_argument("--originals", action="store_true", help="download original files instead of thumbnails")
    c.set_defaults(func=run)
    r = verbs.add_parser("replay", help="serve the offline replay API on 127.0.0.1 until interrupted")
    r.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    r.add_argument("--faults", default="", help="queued faults, e.g. api:429,image:truncate,image:429-long")
    r.add_argument("--flickr-cap", type=int, default=4000, help="Flickr's per-query result cap (default 4000)")
    r.add_argument("--cap-mode", choices=("repeat", "error"), default="repeat",
                   help="past the cap: repeat the last page, or error 20 (default repeat)")
    r.add_argument("--drift", type=int, default=0, help="Flickr pages > 1 start this many photos early")
    r.add_argument("--unstable", action="store_true", help="equal upload times in a new order on every request")
    r.add_argument("--bulk", type=int, default=0, help="add this many tiny Flickr photos (e.g. 5000: past the cap)")
    r.add_argument("--ua-policy", default="", help="answer 403 to a User-Agent without contact: api,image")
    r.add_argument("--latency", type=float, default=0.0, help="seconds every image answer is delayed")
    r.set_defaults(func=run_replay)
    s = verbs.add_parser("status", help="print a collection's state, counts and pending downloads")
    s.add_argument("-o", "--out", required=True, help="collection directory")
    s.set_defaults(func=run_status)


def _client(args: argparse.Namespace) -> object:
    from gpic_lab.collect.collector import make_client

    user_agent = args.user_agent
    if args.source == "commons":
        from gpic_lab.collect.commons import wikimedia_user_agent

        user_agent = wikimedia_user_agent(args.contact, args.user_agent)
    elif args.contact and not user_agent:
        from gpic_lab.collect.http import USER_AGENT

        user_agent = f"{USER_AGENT.split(' ', 1)[0]} ({args.contact})"
    return make_client(args.budget, args.rate or None, args.retries, args.timeout, args.backoff,
                       user_agent=user_agent, concurrency=args.concurrency, bandwidth_mbps=args.bandwidth_mbps or None,
                       download_rate=args.download_rate or None, time_scale=args.time_scale)


def _validate(args: argparse.Namespace) -> None:
    from gpic_lab.errors import UsageError

    for name in ("budget", "retries", "shard_size", "max_items", "concurrency"):
        value = getattr(args, name)
        low = 1 if name in ("shard_size", "concurrency") else 0
        if value is not None and value < low:
            raise UsageError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if not 0.0 <= args.max_failed_share <= 1.0:
        raise UsageError(f"--max-failed-share must be in 0..1, got {args.max_failed_share}")
    if args.time_scale < 0:
        raise UsageError(f"--time-scale must be >= 0, got {args.time_scale}")


def run(args: argparse.Namespace) -> int:
    from gpic_lab.collect.collector import collect_commons, collect_flickr

    _validate(args)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    common = {"client": _client(args), "base_url": args.base_url, "shard_size": args.shard_size,
              "max_items": args.max_items, "permissive_only": not args.all_licenses, "progress": sys.stderr.isatty()}
    if args.source == "flickr":
        result = collect_flickr(args.out, license_ids=args.license, size=args.size, per_page=args.per_page,
                                min_upload_date=args.min_upload_date, max_upload_date=args.max_upload_date,
                                min_taken_date=args.min_taken_date, max_taken_date=args.max_taken_date,
                                text=args.text, tags=args.tags, **common)
    else:
        result = collect_commons(args.out, category=args.category, start=args.start, limit=args.limit,
                                 thumb_width=None if args.originals else args.thumb_width, originals=args.originals,
                                 **common)
    print(json.dumps(result.as_dict(), sort_keys=True))
    return _report(args, result)


def _report(args: argparse.Namespace, result: object) -> int:
    """The stderr summary lines and the exit code of a finished invocation."""
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts.items()) or "nothing listed"
    verb = f"collect {args.source}"
    print(f"{verb}: {result.status}; {len(result.shards)} shard(s); {counts}; {result.http['requests']} request(s)",
          file=sys.stderr)
    pending = result.pending
    if pending.get("count"):
        reasons = ", ".join(f"{k} x{v}" for k, v in pending["by_reason"].items())
        print(f"{verb}: {pending['count']} download(s) pending ({reasons}); next retry due in "
              f"{pending['next_retry_in_s']}s; rerun the same command to retry them", file=sys.stderr)
    if result.status == "budget":
        print(f"{verb}: request budget spent; rerun the same command to resume", file=sys.stderr)
        return EXIT_BUDGET
    if result.status == "blocked":
        hint = "; Wikimedia blocks clients without a contact in the User-Agent (--contact)" \
            if args.source == "commons" else ""
        print(f"{verb}: the image host refused many downloads in a row ({_last_reason(result)}){hint}; fix the "
              f"cause and rerun: the pending downloads are retried first", file=sys.stderr)
        return EXIT_DOWNLOADS
    if result.failed_share > args.max_failed_share:
        print(f"{verb}: {result.failed} download(s) failed and {pending.get('count', 0)} pending: "
              f"{result.failed_share:.1%} > --max-failed-share {args.max_failed_share:.1%}", file=sys.stderr)
        return EXIT_DOWNLOADS
    return 0


def _last_reason(result: object) -> str:
    by_reason = result.pending.get("by_reason") or {}
    return ", ".join(by_reason) or "unknown"


def run_replay(args: argparse.Namespace) -> int:
    import time

    from gpic_lab.collect.replay import ReplayServer, bulk_flickr_catalog, default_catalog
    from gpic_lab.errors import UsageError

    try:
        items = default_catalog() + (bulk_flickr_catalog(args.bulk) if args.bulk else [])
        server = ReplayServer(items, port=args.port, faults=args.faults, flickr_cap=args.flickr_cap,
                              cap_mode=args.cap_mode, drift=args.drift, unstable=args.unstable,
                              ua_policy=tuple(x for x in args.ua_policy.split(",") if x), latency_s=args.latency)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    with server:
        print(f"replay: flickr {server.flickr_url} (key: FLICKR_API_KEY={server.api_key}), "
              f"commons {server.commons_url}; Ctrl-C to stop", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def run_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpic_lab.collect.queue import DeferredQueue
    from gpic_lab.errors import UsageError

    path = Path(args.out) / "state.json"
    if not path.is_file():
        raise UsageError(f"{args.out}: no collection state (state.json) here")
    state = json.loads(path.read_text())
    keys = ("query", "cursor", "shard_index", "done", "counts", "listing")
    print(json.dumps({k: state.get(k) for k in keys} | {"spooled": len(state["spool"]),
                     "pending": DeferredQueue(state.get("deferred") or []).summary()}, indent=2, sort_keys=True))
    return 0
