"""`gpic-lab collect flickr|commons|replay|status`: collect images into GPIC shards (resumable), or serve the
offline replay API. Exit 0 done / item limit reached, 3 request budget spent (rerun to resume), 1 failure (state
kept at the last commit; rerun to resume), 2 usage error or rejected API key."""

from __future__ import annotations

import argparse
import json
import logging
import sys

EXIT_BUDGET = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="collection directory (shards/, provenance/, state.json)")
    p.add_argument("--base-url", default=None, help="API endpoint (default: the real API; e.g. the replay server)")
    p.add_argument("--budget", type=int, default=None, help="max HTTP requests for this invocation (retries count)")
    p.add_argument("--rate", type=float, default=1.0, help="max requests per second (default 1; 0 = unlimited)")
    p.add_argument("--retries", type=int, default=5, help="retries per request on 429/5xx/timeouts (default 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="socket timeout in seconds (default 30)")
    p.add_argument("--backoff", type=float, default=0.5, help="backoff base in seconds (default 0.5)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--max-items", type=int, default=None, help="stop after this many images written")
    p.add_argument("--all-licenses", action="store_true",
                   help="also collect non-permissive images (default: skip and count them before download)")
    p.add_argument("--user-agent", default=None, help="User-Agent header (Wikimedia asks for a contact address)")
    p.add_argument("-v", "--verbose", action="store_true", help="log retries and skipped downloads to stderr")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="collect images from Flickr / Wikimedia Commons into GPIC shards",
                       description=__doc__)
    verbs = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    f = verbs.add_parser("flickr", help="flickr.photos.search (key from $FLICKR_API_KEY)")
    _common(f)
    f.add_argument("--license", default=None, help="Flickr license ids, e.g. 4,9,10 (default: GPIC's 4,7,8,9,10,11)")
    f.add_argument("--size", default="c", help="size suffix: q n z c l o ... (default c = 800px; falls back smaller)")
    f.add_argument("--per-page", type=int, default=100, help="results per API page (1..500, default 100)")
    for name in ("min-upload-date", "max-upload-date", "min-taken-date", "max-taken-date"):
        f.add_argument(f"--{name}", default=None, help="ISO date or unix time")
    f.add_argument("--text", default=None, help="free-text search")
    f.add_argument("--tags", default=None, help="comma-separated tags")
    f.set_defaults(func=run)
    c = verbs.add_parser("commons", help="Wikimedia Commons files (a category, or all images)")
    _common(c)
    c.add_argument("--category", default=None, help="category name (without 'Category:'); default: allimages")
    c.add_argument("--start", default=None, help="allimages: start at this file name")
    c.add_argument("--limit", type=int, default=50, help="files per API page (1..500, default 50)")
    c.add_argument("--thumb-width", type=int, default=None, help="download a thumbnail of this width, not the original")
    c.set_defaults(func=run)
    r = verbs.add_parser("replay", help="serve the offline replay API on 127.0.0.1 until interrupted")
    r.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    r.add_argument("--faults", default="", help="queued faults, e.g. api:429,image:truncate,image:non-image")
    r.set_defaults(func=run_replay)
    s = verbs.add_parser("status", help="print a collection's state and counts")
    s.add_argument("--out", required=True, help="collection directory")
    s.set_defaults(func=run_status)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.collect.collector import collect_commons, collect_flickr, make_client
    from gpic_lab.errors import UsageError

    for name in ("budget", "retries", "shard_size", "max_items"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "shard_size" else 0):
            raise UsageError(f"--{name.replace('_', '-')} must be non-negative (shard size >= 1), got {value}")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    client = make_client(args.budget, args.rate or None, args.retries, args.timeout, args.backoff,
                         user_agent=args.user_agent)
    common = {"client": client, "base_url": args.base_url, "shard_size": args.shard_size,
              "max_items": args.max_items, "permissive_only": not args.all_licenses}
    if args.source == "flickr":
        result = collect_flickr(args.out, license_ids=args.license, size=args.size, per_page=args.per_page,
                                min_upload_date=args.min_upload_date, max_upload_date=args.max_upload_date,
                                min_taken_date=args.min_taken_date, max_taken_date=args.max_taken_date,
                                text=args.text, tags=args.tags, **common)
    else:
        result = collect_commons(args.out, category=args.category, start=args.start, limit=args.limit,
                                 thumb_width=args.thumb_width, **common)
    print(json.dumps(result.as_dict(), sort_keys=True))
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts.items()) or "nothing listed"
    print(f"collect {args.source}: {result.status}; {len(result.shards)} shard(s); {counts}; "
          f"{result.http['requests']} request(s)", file=sys.stderr)
    if result.status == "budget":
        print(f"collect {args.source}: request budget spent; rerun the same command to resume", file=sys.stderr)
        return EXIT_BUDGET
    return 0


def run_replay(args: argparse.Namespace) -> int:
    import time

    from gpic_lab.collect.replay import ReplayServer
    from gpic_lab.errors import UsageError

    try:
        server = ReplayServer(port=args.port, faults=args.faults)
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

    from gpic_lab.errors import UsageError

    path = Path(args.out) / "state.json"
    if not path.is_file():
        raise UsageError(f"{args.out}: no collection state (state.json) here")
    state = json.loads(path.read_text())
    print(json.dumps({k: state[k] for k in ("query", "cursor", "page_offset", "shard_index", "done", "counts")}
                     | {"spooled": len(state["spool"])}, indent=2, sort_keys=True))
    return 0
