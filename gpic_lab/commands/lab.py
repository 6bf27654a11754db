"""`gpic-lab lab [--port N]`: JupyterLab on 127.0.0.1 with the project kernel, opened on notebooks/."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 with the 'Python (gpic_lab)' kernel",
                       description="Binds to 127.0.0.1 only; prints the URL with its token (set GPIC_LAB_TOKEN "
                                   "to choose one; the server gets it through its environment, never its command "
                                   "line). Ctrl-C or SIGTERM stops the server and its kernels.")
    p.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.commands._signals import sigterm_as_interrupt
    from gpic_lab.paths import project_root
    from gpic_lab.runs import lab

    root = project_root()
    token = lab.new_token()
    proc = None
    with sigterm_as_interrupt():  # `kill` stops JupyterLab and its kernels too, like Ctrl-C
        try:
            proc = lab.start(root, args.port, token)
            return _serve(lab, proc, args.port, token)
        except KeyboardInterrupt:
            return 0
        finally:
            if proc is not None:
                lab.stop(proc)


def _serve(lab: Any, proc: Any, port: int, token: str) -> int:
    """Wait until the server answers, print its URL, then wait for it to end."""
    try:
        lab.wait_ready(port, token, proc=proc)
    except TimeoutError as exc:
        print(f"gpic-lab lab: error: {exc} (is port {port} taken? try --port)", file=sys.stderr)
        return 1
    print(f"JupyterLab: http://127.0.0.1:{port}/lab/tree/notebooks?token={token}", flush=True)
    print(f"kernel: {lab.KERNEL_DISPLAY} ({lab.KERNEL_NAME}); Ctrl-C to stop", file=sys.stderr)
    return proc.wait()
