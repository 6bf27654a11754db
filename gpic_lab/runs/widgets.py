"""Interactive controls for notebooks run by a person (never under `gpic-lab run`: the parameters cell decides).

``threshold_explorer(stage_dir, sliders)``: one slider per threshold over a stage's stored decisions; moving one
re-decides the table from its ``score_*`` columns (``gpic_lab.engine.rethreshold.recompute``, nothing is
recomputed from pixels) and shows at once how many images each setting drops, per reason, and a grid of the images
whose decision changes. "Write decisions" saves the table for the current sliders (``rethreshold``) where
``pack`` can take it.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _thumb(shard_index: dict[str, Any], shard: str, key: str, side: int = 112) -> bytes:
    """A JPEG thumbnail of ``key`` read from ``shard`` by offset (the shard is indexed once)."""
    from PIL import Image

    from gpic_lab.core.images import to_8bit
    from gpic_lab.shards.reader import ShardIndex

    if shard not in shard_index:
        shard_index[shard] = ShardIndex.build([shard])
    with Image.open(io.BytesIO(shard_index[shard].get(key).image)) as im:
        im.draft("RGB", (side * 2, side * 2))
        small = to_8bit(im).convert("RGB")
    small.thumbnail((side, side))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def counts_html(frame: Any, info: Mapping[str, Any]) -> str:
    """The summary line and the per-reason table (before → after) of a re-decided frame."""
    before = frame["prev_reason"].fillna("kept").value_counts()
    after = frame["reason"].fillna("kept").value_counts()
    reasons = sorted(set(before.index) | set(after.index), key=lambda r: (r != "kept", r))
    cell = "<td style='padding:0 10px'>"
    rows = "".join(f"<tr>{cell}{html.escape(r)}</td>{cell}{int(before.get(r, 0))}</td>{cell}<b>{int(after.get(r, 0))}"
                   f"</b></td></tr>" for r in reasons)
    dropped = int((~frame["keep"]).sum())
    return (f"<div><b>{dropped}</b> of {len(frame)} dropped "
            f"(was {int((~frame['prev_keep']).sum())}): <span style='color:#b00'>+{info['newly_dropped']} dropped"
            f"</span>, <span style='color:#070'>+{info['newly_kept']} kept</span>, {info['undecided']} undecided by "
            f"the stored scores</div><table style='border-collapse:collapse'><tr>{cell}reason</td>{cell}before</td>"
            f"{cell}now</td></tr>{rows}</table>")


def _grid(w: Any, frame: Any, shard_index: dict[str, Any], limit: int) -> Any:
    changed = frame[frame["keep"] != frame["prev_keep"]].head(limit)
    cells = []
    for row in changed.itertuples():
        label = f"+ {row.reason}" if not row.keep else f"kept (was {row.prev_reason})"
        color = "#b00" if not row.keep else "#070"
        try:
            image = w.Image(value=_thumb(shard_index, str(row.shard), str(row.key)), width=112)
        except Exception:  # noqa: BLE001 - a shard moved or a key not found: show the label alone
            image = w.HTML("(no image)")
        cells.append(w.VBox([image, w.HTML(f"<small style='color:{color}'>{html.escape(label)}<br>"
                                           f"{html.escape(str(row.key)[:12])}</small>")]))
    if not cells:
        return w.HTML("<i>no decision changes at these thresholds</i>")
    return w.GridBox(cells, layout=w.Layout(grid_template_columns="repeat(6, 120px)"))


def threshold_explorer(stage_dir: str | Path, sliders: Mapping[str, tuple[float, float, float]],
                       out_dir: str | Path | None = None, grid: int = 12) -> Any:
    """Sliders for ``stage_dir``'s thresholds: live counts, changed-image grid, a button writing the decisions.

    Args:
        stage_dir: a stage output directory (decisions.parquet with score columns, summary.json).
        sliders: {threshold: (min, max, step)}; each starts at the value the stage ran with.
        out_dir: where "Write decisions" puts the table (default: ``<stage_dir>-rethreshold``).
        grid: how many changed images to show.
    """
    import ipywidgets as w

    from gpic_lab.engine.rethreshold import load_stage, recompute, rethreshold

    frame, stage, source = load_stage(stage_dir)
    start = recompute(frame, stage, {}, source, stage_dir)[1]["params"]  # every threshold as the stage ran
    target = Path(out_dir) if out_dir else Path(f"{stage_dir}-rethreshold")
    controls = {name: _slider(w, name, lo, hi, step, start) for name, (lo, hi, step) in sliders.items()}
    counts, changes, status = w.HTML(), w.Box(), w.HTML()
    shard_index: dict[str, Any] = {}

    def current() -> dict[str, Any]:
        return {name: c.value for name, c in controls.items() if c.value != start.get(name)}

    def update(_change: Any = None) -> None:
        table, info = recompute(frame, stage, current(), source, stage_dir)
        counts.value = counts_html(table, info)
        changes.children = [_grid(w, table, shard_index, grid)]

    def write(_button: Any) -> None:
        summary = rethreshold(stage_dir, target, current())
        status.value = (f"wrote {html.escape(str(target))}/decisions.parquet "
                        f"({summary['rethreshold']['changed']} decisions changed)")

    for c in controls.values():
        c.observe(update, names="value")
    button = w.Button(description="Write decisions", icon="save", tooltip=f"rethreshold into {target}")
    button.on_click(write)
    update()
    title = w.HTML(f"<b>{html.escape(stage)}</b>: thresholds re-decided from the stored scores of "
                   f"<code>{html.escape(_shown(stage_dir))}</code>")
    return w.VBox([title, w.VBox(list(controls.values())), counts, changes, w.HBox([button, status])])


def _shown(path: str | Path) -> str:
    """A path relative to the project when it lies inside it."""
    from gpic_lab.paths import project_root

    resolved = Path(path).resolve()
    return str(resolved.relative_to(project_root())) if resolved.is_relative_to(project_root()) else str(path)


def _slider(w: Any, name: str, lo: float, hi: float, step: float, source: Mapping[str, Any]) -> Any:
    value = source.get(name, lo)
    kind = w.IntSlider if all(float(v).is_integer() for v in (lo, hi, step)) and isinstance(value, int) \
        else w.FloatSlider
    return kind(value=value, min=lo, max=hi, step=step, description=name, continuous_update=False, readout=True,
                style={"description_width": "150px"}, layout=w.Layout(width="560px"))
