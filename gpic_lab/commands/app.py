"""`gpic-lab app NAME [--port 5151]`: the FiftyOne App on 127.0.0.1, stopped cleanly on Ctrl-C or exit."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="open a FiftyOne dataset in the App (127.0.0.1; Ctrl-C stops it)")
    p.add_argument("name", help="dataset name (see `gpic-lab fiftyone list`)")
    p.add_argument("--port", type=int, default=5151, help="port on 127.0.0.1")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S seconds (scripts, tests)")
    p.set_defaults(func=run)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from gpic_lab.errors import UsageError
    from gpic_lab.fo.bridge import launch_app

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a TCP port")
    previous = signal.signal(signal.SIGTERM, _stop)
    handle = launch_app(args.name, port=args.port)
    try:
        print(f"app: {handle.url}  (Ctrl-C to stop)", flush=True)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("app: stopping", file=sys.stderr)
    finally:
        handle.close()
        signal.signal(signal.SIGTERM, previous)
    return 0
