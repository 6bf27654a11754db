"""The review loop on the FiftyOne side: sample tags set in the App become review marks, and key lists become
saved views. Works through the dataset objects of ``gpic_lab.fo.bridge`` (this module never imports fiftyone).

In the App, select samples and tag them (``reject``, ``recaption``, ``keep`` or any tag configured in
``gpic_lab.engine.review``); ``gpic-lab review export NAME --out DIR`` then writes the decisions ``pack`` applies.
FiftyOne records no user: the reviewer is what the exporter says (``--reviewer``, default the login name: OUR
ASSUMPTION), the time is the sample's ``last_modified_at`` (FiftyOne updates it when a tag changes).
"""

from __future__ import annotations

import getpass
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

RECORD_FIELDS = ("shard", "license", "license_url", "attribution", "source")


def open_existing(name: str) -> Any:
    """The persistent dataset ``name``; a UsageError when there is none (never creates one)."""
    from gpic_lab.fo import bridge

    if name not in bridge.list_datasets():
        raise UsageError(f"no FiftyOne dataset named {name!r} (see `gpic-lab fiftyone list`)")
    return bridge.open_dataset(name)


def default_reviewer() -> str:
    """The login name of the exporting user ("unknown" when there is none)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def _iso(value: Any) -> str:
    from datetime import UTC

    if value is None:
        return ""
    if getattr(value, "tzinfo", None) is None and hasattr(value, "replace"):
        value = value.replace(tzinfo=UTC)  # FiftyOne stores naive UTC datetimes
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value)


def tag_marks(dataset: Any, tags: Collection[str], reviewer: str | None = None) -> list[Any]:
    """One ``engine.review.Mark`` per (sample, review tag) of the samples carrying any of ``tags``."""
    from gpic_lab.engine.review import Mark

    view = dataset.match_tags(list(tags))
    schema = dataset.get_field_schema()
    fields = ["key", "tags", *(f for f in ("caption_type", "last_modified_at", *RECORD_FIELDS) if f in schema)]
    columns = {f: view.values(f) for f in fields}
    who = reviewer or default_reviewer()
    marks = []
    for i, key in enumerate(columns["key"]):
        row = {f: values[i] for f, values in columns.items()}
        meta = {f: row[f] for f in RECORD_FIELDS if f in row}
        for tag in sorted(set(row["tags"] or []) & set(tags)):
            marks.append(Mark(key=key, tag=tag, source=f"fiftyone:{dataset.name}", reviewed_by=who,
                              reviewed_at=_iso(row.get("last_modified_at")),
                              caption_type=str(row.get("caption_type") or ""), meta=meta))
    return marks


def tag_keys(dataset: Any, keys: Sequence[str], tag: str) -> int:
    """Tag the samples with these keys (what selecting them and tagging in the App does); returns how many."""
    view = dataset.select_by("key", list(keys))
    view.tag_samples(tag)
    return len(view)


def save_keys_view(dataset: Any, view_name: str, keys: Sequence[str]) -> int:
    """Save the samples with ``keys``, in that order, as the saved view ``view_name`` (overwriting); returns its size.

    Keys absent from the dataset are skipped."""
    if not keys:
        raise UsageError(f"saved view {view_name!r}: no keys to show")
    view = dataset.select_by("key", list(keys), ordered=True)
    dataset.save_view(view_name, view, overwrite=True)
    return len(view)


def view_url(dataset: Any, app_url: str, view_name: str) -> str:
    """The App URL that opens the saved view ``view_name`` (``?view=<slug>``)."""
    slug = dataset._get_saved_view_doc(view_name).slug  # FiftyOne's URL name of the saved view
    return f"{app_url}?view={slug}"


def set_view(app: Any, view: Any, timeout: float = 60.0) -> None:
    """``app.session.view = view``, waiting for the session's connection to its App server (just after the launch
    it raises "Client is not connected")."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            app.session.view = view
            return
        except RuntimeError as exc:
            if "not connected" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def show_views(app: Any, dataset: Any, names: Sequence[str] | None = None, shots_dir: Path | None = None,
               budget_ms: int = 15000) -> dict[str, str | None]:
    """Open each saved view in the running App (``session.view``), one after the other; with ``shots_dir`` (and
    chromium installed) a screenshot of the App on each. Returns {view: screenshot path or None}."""
    from gpic_lab.fo import browser

    out: dict[str, str | None] = {}
    for name in names if names is not None else dataset.list_saved_views():
        set_view(app, dataset.load_saved_view(name))
        shot = None
        if shots_dir is not None and browser.chromium():
            shot = str(browser.screenshot(app.url, Path(shots_dir) / f"app_view_{name}.png", budget_ms=budget_ms)[0])
        out[name] = shot
    return out


def view_picker(app: Any, dataset: Any, inline: bool = True, height: int = 640) -> Any:
    """An ipywidgets dropdown of the saved views; choosing one shows it in the running App (``session.view``).

    With ``inline`` the App is embedded below the dropdown (``session.show()`` in an output widget)."""
    import ipywidgets as w

    names = dataset.list_saved_views()
    pick = w.Dropdown(options=["(whole dataset)", *names], description="App view", style={"description_width": "80px"})
    link = w.HTML(f"<a href='{app.url}' target='_blank'>{app.url}</a>")
    shown = w.Output()

    def show(change: Any) -> None:
        set_view(app, None if change["new"] not in names else dataset.load_saved_view(change["new"]))

    pick.observe(show, names="value")
    if inline:
        with shown:
            app.session.show(height=height)
    return w.VBox([w.HBox([pick, link]), shown])
