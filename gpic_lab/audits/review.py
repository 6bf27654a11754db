"""Human review of audit findings: an ipywidgets table where a researcher marks a verdict (and a note) per item.

Every verdict is written at once, atomically, to a JSON file (`{item_id: {verdict, note, updated_at, reviewer}}`);
a note is written when it is committed (Enter or leaving the box), not on every keystroke. The file is read back
when a `ReviewTable` is created, so verdicts survive kernel restarts and re-runs.

`verdict_marks` turns a verdict file into review marks (`gpic_lab.engine.review`): with `VERDICT_TAGS`, `ok` keeps
the key, the caption problems ask for a recaption and `other-problem` rejects the image (OUR ASSUMPTION: the
mapping is ours; pass another one). Item ids are `key` or `key:level` (notebook 22), the level naming the caption.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, UsageError

VERDICTS = ("unreviewed", "ok", "hallucinated", "wrong-count", "wrong-attribute", "other-problem")
VERDICT_TAGS = {"ok": "keep", "hallucinated": "recaption", "wrong-count": "recaption", "wrong-attribute": "recaption",
                "other-problem": "reject"}


class ReviewTable:
    """Verdicts for a list of items (dicts with at least `id`; `caption`, `image` bytes and extra columns shown).

    Args:
        items: the rows to review (e.g. the worst captions of an audit), in display order.
        path: the verdict file (JSON); created on the first verdict, reloaded when it exists.
        verdicts: the choices offered (the first one means "not reviewed yet").
        reviewer: recorded with every verdict (default: the login name).
    """

    def __init__(self, items: Sequence[dict[str, Any]], path: str | os.PathLike[str],
                 verdicts: Sequence[str] = VERDICTS, reviewer: str | None = None) -> None:
        self.items = list(items)
        ids = [str(it.get("id", "")) for it in self.items]
        if any(not i for i in ids) or len(set(ids)) != len(ids):
            raise UsageError("review: every item needs a unique non-empty 'id'")
        self.path = Path(path)
        self.choices = tuple(verdicts)
        self.reviewer = reviewer or _login()
        self.verdicts: dict[str, dict[str, str]] = self.load(self.path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
        """Read a verdict file ({} when it does not exist)."""
        path = Path(path)
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GpicError(f"review: cannot read verdict file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise GpicError(f"review: verdict file {path} does not hold a JSON object")
        return data

    def set_verdict(self, item_id: str, verdict: str, note: str | None = None) -> None:
        """Record a verdict (and optionally a note) and save the file atomically."""
        if verdict not in self.choices:
            raise UsageError(f"review: unknown verdict {verdict!r} (choose from {', '.join(self.choices)})")
        if item_id not in {str(it["id"]) for it in self.items}:
            raise UsageError(f"review: no item {item_id!r}")
        old = self.verdicts.get(item_id, {})
        self.verdicts[item_id] = {"verdict": verdict, "note": old.get("note", "") if note is None else note,
                                  "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "reviewer": self.reviewer}
        self.save()

    def save(self) -> Path:
        """Write all verdicts atomically."""
        from gpic_lab.fsio import write_json_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return write_json_atomic(self.path, self.verdicts)

    def verdict(self, item_id: str) -> str:
        """The current verdict of an item (the first choice when not reviewed)."""
        return self.verdicts.get(item_id, {}).get("verdict", self.choices[0])

    def frame(self) -> Any:
        """Items with their verdicts and notes as a pandas DataFrame (no image bytes)."""
        import pandas as pd

        rows = [{**{k: v for k, v in it.items() if k != "image"}, "verdict": self.verdict(str(it["id"])),
                 "note": self.verdicts.get(str(it["id"]), {}).get("note", "")} for it in self.items]
        return pd.DataFrame(rows)

    def counts(self) -> dict[str, int]:
        """Items per verdict."""
        out = dict.fromkeys(self.choices, 0)
        for it in self.items:
            out[self.verdict(str(it["id"]))] += 1
        return out

    def widget(self, thumb: int = 160, columns: Sequence[str] = ()) -> Any:
        """The ipywidgets table: thumbnail, caption and extra columns, a verdict dropdown and a note box per row."""
        import ipywidgets as w

        rows = [w.HTML(f"<b>{len(self.items)} items</b> · verdicts saved to <code>{self.path}</code>")]
        for it in self.items:
            rows.append(self._row(w, it, thumb, columns))
        return w.VBox(rows)

    def _row(self, w: Any, item: dict[str, Any], thumb: int, columns: Sequence[str]) -> Any:
        item_id = str(item["id"])
        image = (w.Image(value=item["image"], width=thumb) if item.get("image") else w.HTML("(no image)"))
        extra = "".join(f"<br><small>{c}: {item.get(c)}</small>" for c in columns)
        text = w.HTML(f"<b>{item_id[:16]}</b><br>{item.get('caption', '')}{extra}",
                      layout=w.Layout(width="480px"))
        pick = w.Dropdown(options=list(self.choices), value=self.verdict(item_id), description="verdict")
        # continuous_update=False: the browser sends the note on Enter or when the box loses focus (a commit)
        note = w.Text(value=self.verdicts.get(item_id, {}).get("note", ""), placeholder="note (Enter saves)",
                      continuous_update=False)
        pick.observe(lambda change: self.set_verdict(item_id, change["new"]), names="value")
        note.observe(lambda change: self.set_verdict(item_id, self.verdict(item_id), change["new"]), names="value")
        return w.HBox([image, text, w.VBox([pick, note])])


def _login() -> str:
    import getpass

    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def verdict_marks(path: str | os.PathLike[str], verdict_tags: dict[str, str] | None = None) -> list[Any]:
    """Review marks (``gpic_lab.engine.review.Mark``) of a verdict file; verdicts without a tag are left out."""
    from gpic_lab.engine.review import Mark
    from gpic_lab.shards.schema import CAPTION_TYPES

    tags = VERDICT_TAGS if verdict_tags is None else verdict_tags
    marks = []
    for item_id, entry in sorted(ReviewTable.load(path).items()):
        tag = tags.get(str(entry.get("verdict", "")))
        if not tag:
            continue
        key, _, level = str(item_id).partition(":")
        marks.append(Mark(key=key, tag=tag, source=f"review-table:{Path(path).name}",
                          reviewed_by=str(entry.get("reviewer") or "unknown"),
                          reviewed_at=str(entry.get("updated_at") or ""), note=str(entry.get("note") or ""),
                          caption_type=level if level in CAPTION_TYPES else ""))
    return marks
