"""Interactive figures of the FiftyOne notebooks: the embedding map as a plotly scatter with hover (``plots.save``
writes it as one self-contained HTML file: plotly.js embedded, it opens offline, with no CDN)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

HOVER_FIELDS = ("caption", "license", "license_family", "caption_type", "split_dir", "drop_reason", "dropped")


def hover_frame(points: Any) -> Any:
    """The points with the hover columns: short key, wrapped caption, license, and the decisions ("kept" or
    stage:reason)."""
    frame = points.copy()
    frame["key12"] = frame["key"].astype(str).str[:12]
    caption = frame["caption"] if "caption" in frame.columns else ""
    frame["caption_wrapped"] = [("<br>".join(textwrap.wrap(textwrap.shorten(str(c), 300, placeholder=" …"), 60))
                                 if isinstance(c, str) else "") for c in (caption if len(frame) else [])]
    reasons = frame["drop_reason"] if "drop_reason" in frame.columns else None
    frame["decisions"] = ["kept" if not isinstance(r, str) or not r else r for r in
                          (reasons if reasons is not None else [None] * len(frame))]
    for name in ("license", "license_family", "caption_type", "split_dir"):
        if name not in frame.columns:
            frame[name] = ""
    return frame


def embedding_scatter(points: Any, color: str, title: str) -> Any:
    """A plotly scatter of the 2-D embedding (columns x, y) coloured by ``color``, hover: key, caption, license,
    caption type and decisions; dropped samples drawn as crosses."""
    import plotly.express as px

    frame = hover_frame(points)
    frame[color] = frame[color].fillna("none").astype(str) if color in frame.columns else "all"
    frame["marker"] = ["dropped" if d != "kept" else "kept" for d in frame["decisions"]]
    fig = px.scatter(frame, x="x", y="y", color=color, symbol="marker", symbol_map={"kept": "circle",
                                                                                     "dropped": "x"},
                     custom_data=["key12", "caption_wrapped", "license", "license_family", "caption_type",
                                  "decisions"], title=title, width=900, height=620)
    fig.update_traces(marker={"size": 11, "line": {"width": 0.5, "color": "white"}},
                      hovertemplate="<b>%{customdata[0]}</b> · %{customdata[4]}<br>%{customdata[1]}<br>"
                                    "license: %{customdata[2]} (%{customdata[3]})<br>decisions: %{customdata[5]}"
                                    "<extra></extra>")
    fig.update_layout(xaxis_title="dim 1", yaxis_title="dim 2", legend_title_text=f"{color} · decision",
                      hoverlabel={"align": "left"})
    return fig


def is_self_contained(path: str | Path) -> bool:
    """True when an HTML file loads no script from the network (plotly.js embedded, no CDN link)."""
    import re

    return re.search(r"<script[^>]*\bsrc=[\"']?(https?:)?//", Path(path).read_text(encoding="utf-8")) is None
