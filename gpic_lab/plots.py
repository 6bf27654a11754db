"""Figure helpers. `save(fig, stage, name)` is the only way notebooks write figures (to figures/<stage>/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpic_lab.paths import figures_root


def save(fig: Any, stage: str, name: str, dpi: int = 120) -> Path:
    """Save a matplotlib figure (PNG) or a plotly figure (HTML) under figures/<stage>/<name>.{png,html}."""
    from gpic_lab.fsio import atomic_path

    out_dir = figures_root() / stage
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(fig, "savefig"):
        target = out_dir / f"{name}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    else:
        target = out_dir / f"{name}.html"
        with atomic_path(target) as tmp:
            fig.write_html(str(tmp), include_plotlyjs="cdn")
    return target
