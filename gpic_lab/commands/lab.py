"""`gpic-lab lab [--port N]`: JupyterLab on 127.0.0.1 with the project kernel, opened on notebooks/."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="start JupyterLab on 127.0.0.1 with the 'Python (gpic_lab)' kernel",
                       description="Binds to 127.0.0.1 only; prints the URL with its token (set GPIC_LAB_TOKEN "
                                   "to choose one). Ctrl-C stops the server and its kernels.")
    p.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpic_lab.paths import project_root
    from gpic_lab.runs import lab

    root = project_root()
    token = lab.new_token()
    proc = lab.start(root, args.port, token)
    try:
        lab.wait_ready(args.port, token, proc=proc)
        print(f"JupyterLab: http://127.0.0.1:{args.port}/lab/tree/notebooks?token={token}")
        print(f"kernel: {lab.KERNEL_DISPLAY} ({lab.KERNEL_NAME}); Ctrl-C to stop", file=sys.stderr)
        return proc.wait()
    except TimeoutError as exc:
        print(f"gpic-lab lab: error: {exc} (is port {args.port} taken? try --port)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        lab.stop(proc)
