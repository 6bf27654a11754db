"""`gpic-lab screenshot page|app|lab ...`: PNGs of the interactive controls, from headless Chromium (127.0.0.1).

- ``page FILE.html --out PNG``: a saved figure served on 127.0.0.1 (offline), hovering a point of a plotly chart;
- ``app NAME --view VIEW --out PNG``: the FiftyOne App with ``session.view`` set to a saved view;
- ``lab NOTEBOOK --match TEXT --out PNG``: JupyterLab on 127.0.0.1 runs every cell of the notebook as a person
  would (widgets shown), then the output of the first cell whose source contains TEXT is captured, optionally
  after running ``--then CODE`` in the kernel (e.g. setting a slider's value, as a hand on it would).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PANEL = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.content && w.content.widgets)"
CELL_JS = """(() => {{ const nb = """ + PANEL + """.content;
  const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes({match}));
  if (i < 0) return null; const cell = nb.widgets[i]; nb.activeCellIndex = i; cell.node.scrollIntoView({{block: 'start'}});
  const out = cell.node.querySelector('.jp-OutputArea'); if (!out || !out.querySelector({ready})) return null;
  const r = out.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }})()"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screenshot", help="PNG of an interactive figure, the App on a saved view, or a notebook's "
                                          "widgets in JupyterLab (headless Chromium, 127.0.0.1)")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    page = kinds.add_parser("page", help="a saved HTML figure, hovering a plotly point")
    page.add_argument("file", help="HTML file (served from its directory on 127.0.0.1)")
    page.add_argument("--hover-trace", default="", metavar="TEXT", help="hover the first point of the first trace "
                                                                         "whose name contains TEXT")
    app = kinds.add_parser("app", help="the FiftyOne App on a saved view (session.view)")
    app.add_argument("name", help="dataset name")
    app.add_argument("--view", required=True, help="saved view name")
    app.add_argument("--show", default="", metavar="FIELD,...", help="tick these fields in the sidebar: the App "
                                                                      "writes their values on every tile")
    lab = kinds.add_parser("lab", help="run a notebook in JupyterLab and capture one cell's output")
    lab.add_argument("notebook", help="notebook path inside the project")
    lab.add_argument("--match", required=True, metavar="TEXT", help="capture the first cell whose source has TEXT")
    lab.add_argument("--ready", default=".jupyter-widgets", metavar="CSS", help="selector that marks the output ready")
    lab.add_argument("--then", default="", metavar="CODE", help="Python run in the notebook's kernel before the capture "
                                                              "(e.g. move a slider: explorers[0]...value = 2.0)")
    lab.add_argument("--timeout", type=float, default=900, help="seconds for the notebook to reach the cell")
    for q in (page, app, lab):
        q.add_argument("-o", "--out", required=True, help="PNG to write")
        q.add_argument("--size", default="1400x900", metavar="WxH", help="browser window size")
    p.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    from gpic_lab.errors import UsageError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT") from None
    return w, h


@contextlib.contextmanager
def _served(directory: Path) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 for ``directory`` (quiet); yields its port."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_port)
    finally:
        srv.shutdown()
        srv.server_close()


def shot_page(file: Path, out: Path, size: tuple[int, int], hover_trace: str = "") -> Path:
    """Screenshot an HTML file served on 127.0.0.1; hover the first point of a matching plotly trace."""
    from gpic_lab.fo.cdp import Page

    with _served(file.parent) as port, Page(*size) as page:
        page.goto(f"http://127.0.0.1:{port}/{file.name}")
        page.wait_for("document.querySelectorAll('.scatterlayer .point').length", 60)
        if hover_trace:
            xy = page.eval(f"""(() => {{ const gd = document.querySelector('.js-plotly-plot');
              const i = gd.data.findIndex(t => String(t.name).includes({json.dumps(hover_trace)}));
              const p = document.querySelectorAll('.scatterlayer .trace')[Math.max(i, 0)].querySelector('.point');
              const r = p.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
            page.mouse(*xy)
            page.wait_for("document.querySelectorAll('.hoverlayer .hovertext').length", 10)
        return page.screenshot(out)


def shot_app(name: str, view: str, out: Path, size: tuple[int, int], show: str = "") -> Path:
    """The App on saved view ``view`` (set through ``session.view``), the promotional popup dismissed."""
    from gpic_lab.fo import bridge
    from gpic_lab.fo.cdp import Page
    from gpic_lab.fo.review import open_existing, set_view
    from gpic_lab.fo.services import free_port

    dataset = open_existing(name)
    handle = bridge.launch_app(name, port=free_port())
    try:
        set_view(handle, dataset.load_saved_view(view))
        with Page(*size) as page:
            page.goto(handle.url, settle=3)
            page.wait_for(f"document.body.innerText.includes({json.dumps(view)})", 60)
            page.eval("[...document.querySelectorAll('button, div')].filter(b => b.innerText === 'Dismiss')"
                      ".forEach(b => b.click()); true")
            time.sleep(2)
            for field in filter(None, show.split(",")):
                x, y = page.wait_for(f"(() => {{ const e = [...document.querySelectorAll('*')].filter(n => "
                                     f"!n.childElementCount && n.textContent === {json.dumps(field)}).pop(); if (!e) return null;"
                                     " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                                     " return [r.x - 16, r.y + r.height / 2]; })()", 30)
                page.mouse(x, y, click=True)  # the field's checkbox, left of its name in the sidebar (its last mention)
                time.sleep(3)
            return page.screenshot(out)
    finally:
        handle.close()


def _lab_settings(root: Path) -> None:
    """JupyterLab user settings: every cell in the DOM (no windowing), no news popup, and no autosave (the run's
    outputs must never be written into the project's notebook)."""
    for plugin, values in (("notebook-extension/tracker", {"windowingMode": "none"}),
                           ("docmanager-extension/plugin", {"autosave": False}),
                           ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False})):
        path = root / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def shot_lab(notebook: str, match: str, out: Path, size: tuple[int, int], ready: str, then: str,
             timeout: float) -> Path:
    """Run ``notebook`` in JupyterLab (a person's run: widgets shown) and capture the output of the matching cell."""
    import subprocess

    from gpic_lab.fo.cdp import Page
    from gpic_lab.paths import project_root
    from gpic_lab.runs import lab

    root, token, port = project_root(), lab.new_token(), lab.free_port()
    with tempfile.TemporaryDirectory(prefix="gpic-lab-shot-") as tmp:
        _lab_settings(Path(tmp) / "settings")
        lab.ensure_kernel()
        cmd = [*lab.lab_command(root, port, token), "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={tmp}/settings", f"--LabApp.workspaces_dir={tmp}/workspaces"]
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            lab.wait_ready(port, token, proc=proc)
            with Page(*size) as page:
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}&reset", settle=2)
                page.wait_for(f"!!(window.jupyterapp && {PANEL} && {PANEL}.sessionContext.session)", 120)
                page.wait_for(f"{PANEL}.sessionContext.session.kernel.status === 'idle'", 120)
                page.eval(f"window.jupyterapp.shell.activateById({PANEL}.id); "
                          "window.jupyterapp.commands.execute('notebook:run-all-cells'); true")
                js = CELL_JS.format(match=json.dumps(match), ready=json.dumps(ready))
                page.wait_for(js, timeout, every=2)
                if then:  # what a person's hand on a control does: the widget's value changes in the kernel
                    page.eval(f"{PANEL}.sessionContext.session.kernel.requestExecute({{code: {json.dumps(then)}}}).done"
                              ".then(() => true)")
                time.sleep(4)
                x, y, w, h = page.wait_for(js, 60)
                return page.screenshot(out, {"x": x, "y": y, "width": w, "height": min(h, 2000)})
        finally:
            lab.stop(proc)


def run(args: argparse.Namespace) -> int:
    out, size = Path(args.out), _size(args.size)
    if args.kind == "page":
        shot = shot_page(Path(args.file).resolve(), out, size, args.hover_trace)
    elif args.kind == "app":
        shot = shot_app(args.name, args.view, out, size, args.show)
    else:
        shot = shot_lab(args.notebook, args.match, out, size, args.ready, args.then, args.timeout)
    print(f"screenshot: {shot} ({shot.stat().st_size} bytes)", file=sys.stderr)
    return 0
