"""Figure helpers. `save(fig, stage, name)` is the only way notebooks write figures.

It writes the figure under ``figures/<stage>/`` (matplotlib as PNG, plotly as a self-contained HTML file with
plotly.js embedded, so it opens on an offline machine) and returns a ``SavedFigure`` that Jupyter displays inline:
``image/png`` for matplotlib, the same self-contained HTML for plotly. Inside a Jupyter kernel (interactive or
`gpic-lab run`) ``save`` displays the figure at once, wherever it stands in the cell (a cell that saves a figure and
then shows a table shows both), so the executed notebook is the report, whatever the matplotlib backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gpic_lab.paths import figures_root


class SavedFigure:
    """A figure written to ``path`` that renders itself inline in Jupyter (``_repr_mimebundle_``).

    ``os.fspath(saved)`` and ``saved.path`` give the file; ``mime`` is ``image/png`` or ``text/html``.
    """

    def __init__(self, path: Path, mime: str, data: bytes | str) -> None:
        self.path, self.mime, self.data = path, mime, data
        self.shown = False  # displayed already (by ``save`` in a kernel): as a cell's value it is then just text

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"<figure {self.path}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        import base64

        if self.shown:
            return {"text/plain": repr(self)}
        data = base64.b64encode(self.data).decode("ascii") if isinstance(self.data, bytes) else self.data
        return {self.mime: data, "text/plain": repr(self)}


def _show_in_kernel(saved: SavedFigure) -> SavedFigure:
    """Display `saved` now when running inside a Jupyter kernel (nothing happens in scripts and tests)."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(saved)
        saved.shown = True
    return saved


def _png(fig: Any, dpi: int) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, bbox_inches="tight", format="png")
    try:  # a pyplot figure would be drawn a second time at the end of the cell by an inline backend
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:
        pass
    return buf.getvalue()


def save(fig: Any, stage: str, name: str, dpi: int = 120) -> SavedFigure:
    """Save a matplotlib figure (PNG) or a plotly figure (self-contained HTML) under figures/<stage>/<name>.

    Returns a ``SavedFigure``: displayed at once inside a Jupyter kernel, path-like everywhere else.
    """
    from gpic_lab.fsio import write_bytes_atomic

    out_dir = figures_root() / stage
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(fig, "savefig"):
        png = _png(fig, dpi)
        return _show_in_kernel(SavedFigure(write_bytes_atomic(out_dir / f"{name}.png", png), "image/png", png))
    page = fig.to_html(include_plotlyjs=True, full_html=True)  # plotly.js embedded: no CDN needed
    target = write_bytes_atomic(out_dir / f"{name}.html", page.encode("utf-8"))
    return _show_in_kernel(SavedFigure(target, "text/html", fig.to_html(include_plotlyjs=True, full_html=False)))


def count_inline(notebook: str | os.PathLike[str]) -> dict[str, int]:
    """Inline figures of an executed notebook: ``{"image/png": n, "text/html": m}`` (html = plotly outputs)."""
    import json

    cells = json.loads(Path(notebook).read_text("utf-8")).get("cells", [])
    counts = {"image/png": 0, "text/html": 0}
    for out in (o for c in cells for o in c.get("outputs", [])):
        data = out.get("data", {})
        counts["image/png"] += "image/png" in data
        counts["text/html"] += "text/html" in data and "plotly" in "".join(data["text/html"])
    return counts
