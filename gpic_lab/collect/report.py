"""Tables and figures for notebook 02: an offline collection from the replay server, and the `license` stage's
decisions against the sample corpus's ground truth (confusion table, family x source table, drop figures, grid)."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

REPLAY_SOURCES = ("flickr", "commons")


def collect_demo(out: str | os.PathLike[str], sources: Sequence[str] = REPLAY_SOURCES, max_items: int = 8,
                 faults: str = "", license_ids: str | None = None, permissive_only: bool = True,
                 fresh: bool = True, sample: str | None = None) -> Any:
    """Collect from a local replay server (127.0.0.1) into `out/<source>/`, one row of counts per source.

    The replay server serves real sample-corpus images as Flickr/Commons API answers and injects `faults`
    (e.g. "api:429,image:truncate") into each source's collection. Its API key is a fixed public dummy: no real
    key is read or shown. With fresh=True an earlier collection in `out/<source>` is removed first.
    """
    import pandas as pd

    from gpic_lab.collect.collector import collect_commons, collect_flickr, make_client
    from gpic_lab.collect.replay import ReplayServer, default_catalog, parse_faults

    unknown = [s for s in sources if s not in REPLAY_SOURCES]
    if unknown:
        raise UsageError(f"unknown replay source(s) {unknown}: choose from {', '.join(REPLAY_SOURCES)}")
    try:
        parse_faults(faults)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    catalog, rows = default_catalog(sample), []
    for source in sources:
        target = Path(out) / source
        if fresh and target.exists():
            shutil.rmtree(target)
        with ReplayServer(list(catalog), faults=faults, timeout_s=1.0) as server:
            client = make_client(rate=None, retries=5, timeout=0.5, backoff=0.05, seed=0)
            common = {"client": client, "shard_size": 1000, "max_items": max_items, "permissive_only": permissive_only}
            if source == "flickr":
                result = collect_flickr(target, base_url=server.flickr_url, api_key=server.api_key,
                                        license_ids=license_ids, per_page=10, **common)
            else:
                result = collect_commons(target, base_url=server.commons_url, limit=10, **common)
        retries = result.http["retries"]
        rows.append({"source": source, "status": result.status, **result.counts, "shards": len(result.shards),
                     "requests": result.http["requests"], "retries": sum(retries.values()),
                     "retry_reasons": ", ".join(f"{k}×{v}" for k, v in sorted(retries.items())),
                     "hosts": ",".join(result.http["hosts"])})
    frame = pd.DataFrame(rows, columns=None if rows else ["source"]).fillna(0).set_index("source")
    for column in ("written", "requests", "retries"):
        if column not in frame:
            frame[column] = 0
    counts = [c for c in frame.columns if c not in ("status", "retry_reasons", "hosts")]
    frame[counts] = frame[counts].astype(int)
    return frame.assign(hosts=frame["hosts"] if "hosts" in frame else "")


def collected_records(out: str | os.PathLike[str]) -> Any:
    """One row per collected record under `out` (any depth): source, key, license, size, attribution, shard."""
    import pandas as pd

    from gpic_lab.core.licenses import normalize, source_of
    from gpic_lab.shards.reader import iter_samples

    shards = sorted(Path(out).rglob("shards/*.tar"))
    rows = [{"source": source_of(s.meta), "key": s.key[:12], "license": s.meta["license"],
             "spdx": normalize(s.meta["license"], s.meta["license_url"]).spdx,
             "size": f"{s.meta['img_width']}x{s.meta['img_height']}", "attribution": s.meta["attribution"],
             "retrieved_at": s.meta["retrieved_at"], "shard": Path(s.shard).name}
            for s in iter_samples(shards, images=False)]
    return pd.DataFrame(rows, columns=["source", "key", "license", "spdx", "size", "attribution", "retrieved_at",
                                       "shard"])


def url_leaks(out: str | os.PathLike[str]) -> int:
    """How many shard records under `out` contain an image or page URL from their provenance table (GPIC: 0)."""
    from gpic_lab.collect.writer import read_provenance
    from gpic_lab.shards.reader import iter_samples

    leaks = 0
    for coll in sorted({p.parent.parent for p in Path(out).rglob("shards/*.tar")}):
        prov = read_provenance(coll).set_index("key")
        for s in iter_samples(sorted((coll / "shards").glob("*.tar")), images=False):
            text = s.json_bytes.decode("utf-8")
            urls = [u for u in prov.loc[s.key, ["image_url", "page_url"]] if u] if s.key in prov.index else []
            leaks += any(u in text for u in urls)
    return leaks


def stage_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The paths among `paths` that hold shards (optional earlier outputs may be missing or empty), as strings."""
    return [str(p) for p in paths if Path(p).is_file() or (Path(p).is_dir() and any(Path(p).rglob("*.tar")))]


def tag_origin(decisions: Any, collected: str | os.PathLike[str]) -> Any:
    """decisions with an `origin` column: 'collected' for shards under `collected`, else 'corpus'."""
    root = str(Path(collected).resolve())
    under = decisions["shard"].astype(str).map(lambda s: str(Path(s).resolve()).startswith(root + os.sep))
    return decisions.assign(origin=under.map({True: "collected", False: "corpus"}))


def load_truth(path: str | os.PathLike[str], kind: str = "license") -> Any:
    """Ground-truth rows of one kind (key -> label) from a ground_truth.csv."""
    import pandas as pd

    if not Path(path).is_file():
        raise UsageError(f"{path}: no ground truth file")
    truth = pd.read_csv(path, dtype=str)
    missing = {"key", "kind", "label"} - set(truth.columns)
    if missing:
        raise UsageError(f"{path}: missing column(s) {sorted(missing)}")
    return truth[truth["kind"] == kind].set_index("key")["label"]


def confusion(decisions: Any, truth: Any) -> Any:
    """Planted label (rows; 'clean' for unplanted samples) x decided reason (columns; 'kept' when kept)."""
    import pandas as pd

    expected = decisions["key"].map(truth).fillna("clean")
    decided = decisions["reason"].fillna("kept").where(~decisions["keep"].astype(bool), "kept")
    table = pd.crosstab(expected.rename("planted"), decided.rename("decided"))
    order = ["kept", *sorted(c for c in table.columns if c != "kept")]
    rows = ["clean", *sorted(r for r in table.index if r != "clean")]
    return table.reindex(index=[r for r in rows if r in table.index], columns=[c for c in order if c in table.columns],
                         fill_value=0)


def scores(decisions: Any, truth: Any) -> dict[str, Any]:
    """Recall (planted caught with the planted reason), exact-reason hits, false drops and missing planted keys."""
    frame = decisions.set_index("key")
    planted = [k for k in truth.index if k in frame.index]
    hits = sum(frame.at[k, "reason"] == truth[k] for k in planted)
    caught = sum(not bool(frame.at[k, "keep"]) for k in planted)
    false_drops = int((~frame["keep"].astype(bool) & ~frame.index.isin(truth.index)).sum())
    return {"planted": len(truth), "planted_seen": len(planted), "caught": int(caught), "right_reason": int(hits),
            "recall": round(caught / max(len(planted), 1), 4), "false_drops": false_drops,
            "samples": len(frame)}


def license_matrix(decisions: Any) -> Any:
    """Samples per license family (rows) x source, split into kept / dropped, with totals."""
    import pandas as pd

    status = decisions["keep"].astype(bool).map({True: "kept", False: "dropped"})
    table = pd.crosstab(decisions["license_family"], [decisions["source"], status.rename("status")])
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)


def plot_drops(decisions: Any) -> Any:
    """Three panels: drops by reason, samples by license family (kept/dropped), samples by source (kept/dropped)."""
    import matplotlib.pyplot as plt

    dropped = decisions[~decisions["keep"].astype(bool)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
    by_reason = dropped["reason"].value_counts().sort_values()
    axes[0].barh(by_reason.index, by_reason.values, color="#c0392b")
    axes[0].set_title(f"dropped by reason ({len(dropped)} of {len(decisions)})")
    for i, v in enumerate(by_reason.values):
        axes[0].text(v, i, f" {v}", va="center", fontsize=9)
    for ax, column in ((axes[1], "license_family"), (axes[2], "source")):
        status = decisions["keep"].astype(bool).map({True: "kept", False: "dropped"})
        counts = decisions.assign(status=status).groupby([column, "status"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=["kept", "dropped"], fill_value=0)
        counts = counts.loc[counts.sum(axis=1).sort_values().index]
        counts.plot.barh(stacked=True, ax=ax, color={"kept": "#27ae60", "dropped": "#c0392b"}, width=0.75)
        ax.set_title(f"samples by {column.replace('_', ' ')}")
        ax.set_ylabel("")
        ax.legend(loc="lower right", fontsize=8)
    for ax in axes:
        ax.set_xlabel("samples")
        ax.tick_params(axis="y", labelsize=9)
    fig.tight_layout()
    return fig


def dropped_grid(decisions: Any, per_reason: int = 2, cols: int = 4, width: int = 40) -> Any:
    """Thumbnails of up to `per_reason` dropped samples per reason, titled with reason and license."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from gpic_lab.shards.reader import read_range

    dropped = decisions[~decisions["keep"].astype(bool)].sort_values(["reason", "key"])
    picks = dropped.groupby("reason", sort=True).head(per_reason)
    nrows = max(1, -(-len(picks) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.7 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    index = _member_index(picks)
    for ax, (_, row) in zip(axes.flat, picks.iterrows(), strict=False):
        where = index.get(row["key"])
        canvas = Image.new("RGB", (320, 240), "#eeeeee")
        if where is not None:
            with Image.open(io.BytesIO(read_range(*where))) as im:
                im.draft("RGB", (320, 240))
                thumb = im.convert("RGB")
            thumb.thumbnail((320, 240))
            canvas.paste(thumb, ((320 - thumb.width) // 2, (240 - thumb.height) // 2))
        ax.imshow(canvas)
        ax.set_title(row["reason"], fontsize=10, color="#c0392b")
        label = textwrap.shorten(f"{row['source']} · {row['license'] or '(empty license)'} · {row['key'][:10]}", width * 2, placeholder="…")
        ax.text(0.0, -0.03, "\n".join(textwrap.wrap(label, width)), transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    return fig


def _member_index(rows: Any) -> dict[str, tuple[str, int, int]]:
    """key -> (shard, image offset, image size) for the rows' keys, reading only their shards' headers."""
    from gpic_lab.shards.reader import Problem, iter_entries

    wanted, out = set(rows["key"]), {}
    for shard in sorted({str(s) for s in rows["shard"] if s and Path(str(s)).is_file()}):
        for e in iter_entries(shard, images=False):
            if not isinstance(e, Problem) and e.key in wanted:
                out[e.key] = (e.shard, e.image_offset, e.image_size)
    return out
