"""The FiftyOne bridge — the only module that imports fiftyone.

`load_dataset` builds or refreshes a persistent FiftyOne dataset from GPIC shards (or a catalog Parquet):
a subset is chosen (shard range, tier, dropped-only, seeded sample), images are materialised into a
content-addressed media cache under the state dir, the schema is declared first and new samples are added in
bulk batches; samples already present (matched by `key`) are refreshed in place, so re-runs never duplicate.
`attach_embeddings`, `compute_brain` and `save_views` add embeddings, fiftyone.brain results (visualization,
similarity, uniqueness, near duplicates; no model downloads) and the saved views a researcher wants on day one.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpic_lab.errors import GpicError, UsageError
from gpic_lab.fo.records import (
    Selection,
    StageDecisions,
    build_row,
    load_decisions,
    load_embeddings,
    materialise,
    select,
    slug,
)
from gpic_lab.fo.services import AppHandle, wait_http
from gpic_lab.paths import configure_environment, state_root

BATCH = 1000
BASE_FIELDS: dict[str, str] = {
    "key": "str", "shard": "str", "split_dir": "str", "source": "str", "license": "str", "license_url": "str",
    "license_family": "str", "spdx": "str", "permissive": "bool", "attribution": "str", "retrieved_at": "str",
    "caption": "str", "caption_type": "str", "split": "list", "width": "int", "height": "int",
    "caption_words": "int", "caption_chars": "int", "qc_flags": "list", "dropped": "bool", "drop_reasons": "list",
    "drop_reason": "str", "license_reason": "str",
}


def media_cache() -> Path:
    """Where materialised images live: <state>/fiftyone/media."""
    return state_root() / "fiftyone" / "media"


def _fo() -> Any:
    configure_environment()
    import fiftyone as fo

    return fo


def _field_type(kind: str) -> tuple[Any, dict[str, Any]]:
    import fiftyone as fo

    return {"str": (fo.StringField, {}), "bool": (fo.BooleanField, {}), "int": (fo.IntField, {}),
            "float": (fo.FloatField, {}), "list": (fo.ListField, {"subfield": fo.StringField})}[kind]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    return "str"


def declare_schema(dataset: Any, fields: dict[str, str]) -> None:
    """Add every field not yet in the dataset's schema (types: str, bool, int, float, list of str)."""
    schema = dataset.get_field_schema()
    for name, kind in fields.items():
        if name not in schema:
            ftype, kwargs = _field_type(kind)
            dataset.add_sample_field(name, ftype, **kwargs)


def _schema_for(rows: list[dict[str, Any]], decisions: StageDecisions) -> dict[str, str]:
    fields = dict(BASE_FIELDS)
    for stage in decisions.stages:
        fields[f"dec_{stage}"] = "str"
        fields.update({f"{stage}_{c}": "float" for c in decisions.score_columns.get(stage, [])})
    for row in rows:
        for name, value in row.items():
            if name not in fields and name not in ("filepath", "tags") and value is not None:
                fields[name] = _kind_of(value)
    return fields


def open_dataset(name: str, overwrite: bool = False) -> Any:
    """Load the persistent dataset `name`, creating it (or recreating it with overwrite=True)."""
    fo = _fo()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", name or ""):
        raise UsageError(f"dataset name {name!r}: use letters, digits, '-' and '_'")
    if fo.dataset_exists(name):
        if not overwrite:
            return fo.load_dataset(name)
        fo.delete_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    declare_schema(dataset, BASE_FIELDS)
    dataset.create_index("key", unique=True)
    return dataset


def load_dataset(paths_or_catalog: Sequence[str | os.PathLike[str]], name: str,
                 decisions_dirs: Sequence[str | os.PathLike[str]] = (), sample: int | None = None, seed: int = 0,
                 shard_range: tuple[int | None, int | None] | None = None, tier: str | None = None,
                 dropped_only: bool = False, audits: dict[str, dict[str, dict[str, Any]]] | None = None,
                 batch_size: int = BATCH, overwrite: bool = False, cache_dir: Path | None = None,
                 progress: bool | str = False) -> Any:
    """Build or refresh the persistent FiftyOne dataset `name` from GPIC shards or a catalog Parquet.

    Args:
        paths_or_catalog: shard files/dirs/URLs, or catalog .parquet files (their keys and shards).
        decisions_dirs: stage output dirs holding decisions.parquet (fields dec_<stage>, scores, tags).
        sample, seed: a seeded random subset of this size; shard_range: slice of the sorted shard list;
        tier: keep records whose split lists it; dropped_only: only samples some stage dropped.
        audits: {audit name: {key: {column: value}}} written as fields `<audit>_<column>`.
        progress: samples prepared (media cache) with rate and ETA on stderr (see ``gpic_lab.progress``).
    Returns the dataset; samples already present (same key) are updated, never duplicated.
    """
    decisions = load_decisions(decisions_dirs)
    if dropped_only and not decisions_dirs:
        raise UsageError("--dropped-only needs at least one --decisions DIR")
    selection = Selection(shard_range=shard_range, tier=tier, dropped_only=dropped_only, sample=sample, seed=seed)
    index, chosen = select(paths_or_catalog, selection, decisions.dropped_keys())
    dataset = open_dataset(name, overwrite=overwrite)
    cache = cache_dir or media_cache()
    existing = set(dataset.distinct("key"))
    new_rows, old_rows = [], []
    from gpic_lab.progress import bar

    total = len(chosen) if hasattr(chosen, "__len__") else None
    for meta_sample in bar(total, "fiftyone load", "img", progress, iterable=chosen):
        if meta_sample.key in existing:
            old_rows.append(build_row(meta_sample, Path(""), decisions, audits))
        else:
            full = index.get(meta_sample.key)
            new_rows.append(build_row(full, materialise(full, cache), decisions, audits))
    declare_schema(dataset, _schema_for(new_rows + old_rows, decisions))
    _add_rows(dataset, new_rows, batch_size)
    _refresh_rows(dataset, old_rows)
    return dataset


def _add_rows(dataset: Any, rows: list[dict[str, Any]], batch_size: int) -> None:
    """Bulk insert: one insert_many per batch of documents built exactly as FiftyOne's `_make_dict` builds them
    (None fields omitted, tags, media type, _rand, dataset id, timestamps), against the declared schema."""
    import random
    from datetime import UTC, datetime

    from pymongo.errors import BulkWriteError

    coll, dataset_id, rng = dataset._sample_collection, dataset._doc.id, random.Random()
    for i in range(0, len(rows), batch_size):
        now = datetime.now(UTC).replace(tzinfo=None)
        docs = []
        for row in rows[i:i + batch_size]:
            doc = {k: v for k, v in row.items() if v is not None}
            doc.setdefault("tags", [])
            doc.update(_media_type="image", _rand=rng.random() * 0.001 + 0.999, _dataset_id=dataset_id,
                       created_at=now, last_modified_at=now)
            docs.append(doc)
        try:
            coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            first = exc.details["writeErrors"][0]
            raise GpicError(f"dataset {dataset.name!r}: insert failed for key "
                            f"{docs[first['index']].get('key')!r}: {first['errmsg']}") from None


def add_samples_batched(dataset: Any, rows: list[dict[str, Any]], batch_size: int = BATCH) -> None:
    """FiftyOne's own batched `add_samples` (reference path for the bench and the fidelity test)."""
    import fiftyone as fo

    for i in range(0, len(rows), batch_size):
        batch = [fo.Sample(**{k: v for k, v in row.items() if v is not None}) for row in rows[i:i + batch_size]]
        dataset.add_samples(batch, progress=False)


def _refresh_rows(dataset: Any, rows: list[dict[str, Any]]) -> None:
    """Update every field except filepath of already-present samples, matched by key."""
    if not rows:
        return
    names = sorted({n for row in rows for n in row} - {"filepath", "key"})
    for name in names:
        dataset.set_values(name, {row["key"]: row.get(name) for row in rows}, key_field="key")


def add_sample_loop(dataset: Any, rows: list[dict[str, Any]]) -> None:
    """The naive baseline: one `add_sample` call per row (used by the bench)."""
    import fiftyone as fo

    for row in rows:
        dataset.add_sample(fo.Sample(**{k: v for k, v in row.items() if v is not None}))


def attach_embeddings(dataset: Any, source: str | os.PathLike[str] | Callable[[list[Any]], Any],
                      field: str = "embedding", batch_size: int = 32) -> int:
    """Store a vector per sample in `field`, from an embeddings .npz/.parquet (by key) or an encoder callable
    (list of PIL images -> array [N, D]). Returns how many samples got one; raises if none did."""
    import numpy as np
    from PIL import Image

    keys, paths = dataset.values("key"), dataset.values("filepath")
    if callable(source):
        vectors: dict[str, Any] = {}
        for i in range(0, len(keys), batch_size):
            images = [Image.open(p) for p in paths[i:i + batch_size]]
            for k, v in zip(keys[i:i + batch_size], np.asarray(source(images)), strict=True):
                vectors[k] = np.asarray(v, dtype=np.float32)
    else:
        vectors = load_embeddings(source)
    found = {k: vectors[k] for k in keys if k in vectors}
    if not found:
        raise GpicError(f"{source}: no embedding matches a key of dataset {dataset.name!r}")
    import fiftyone as fo

    if field not in dataset.get_field_schema():
        dataset.add_sample_field(field, fo.VectorField)
    dataset.set_values(field, found, key_field="key")
    return len(found)


def compute_brain(dataset: Any, field: str = "embedding", method: str = "umap", near_dup_threshold: float = 0.2,
                  seed: int = 51) -> dict[str, Any]:
    """Visualization (umap|pca|tsne) under brain key 'viz', a sklearn similarity index 'sim', the `uniqueness`
    field and near-duplicate groups (`near_dup_of` = key of the group's representative, `near_dup_distance`)
    from the embeddings in `field`. Returns {'points': DataFrame(key, x, y), 'near_dup_pairs': int}."""
    import fiftyone.brain as fob
    import pandas as pd

    view = dataset.exists(field)
    if len(view) < 3:
        raise GpicError(f"dataset {dataset.name!r}: need at least 3 samples with {field!r} for the brain runs")
    for key in ("viz", "sim"):
        if key in dataset.list_brain_runs():
            dataset.delete_brain_run(key)
    viz = fob.compute_visualization(view, embeddings=field, method=method, brain_key="viz", num_dims=2, seed=seed,
                                    progress=False, **({"n_neighbors": min(15, len(view) - 1)}
                                                       if method == "umap" else {}))
    fob.compute_similarity(view, embeddings=field, backend="sklearn", brain_key="sim", progress=False)
    fob.compute_uniqueness(view, embeddings=field, progress=False)
    pairs = near_duplicates(dataset, view, field, near_dup_threshold)
    ids = viz.current_sample_ids if hasattr(viz, "current_sample_ids") else view.values("id")
    key_by_id = dict(zip(view.values("id"), view.values("key"), strict=True))
    points = pd.DataFrame({"key": [key_by_id[i] for i in ids], "x": viz.points[:, 0], "y": viz.points[:, 1]})
    return {"points": points, "near_dup_pairs": pairs}


def near_duplicates(dataset: Any, view: Any, field: str, threshold: float) -> int:
    """Group near duplicates (embedding distance <= threshold); writes near_dup_of / near_dup_distance."""
    import fiftyone as fo
    import fiftyone.brain as fob

    index = fob.compute_near_duplicates(view, threshold=threshold, embeddings=field, progress=False)
    key_by_id = dict(zip(view.values("id"), view.values("key"), strict=True))
    of: dict[str, str | None] = dict.fromkeys(key_by_id.values())
    dist: dict[str, float | None] = dict.fromkeys(key_by_id.values())
    pairs = 0
    for rep_id, neighbours in index.neighbors_map.items():
        rep = key_by_id[rep_id]
        of[rep] = rep
        for dup_id, d in neighbours:
            of[key_by_id[dup_id]], dist[key_by_id[dup_id]] = rep, float(d)
            pairs += 1
    for name, ftype in (("near_dup_of", fo.StringField), ("near_dup_distance", fo.FloatField)):
        if name not in dataset.get_field_schema():
            dataset.add_sample_field(name, ftype)
    dataset.set_values("near_dup_of", of, key_field="key")
    dataset.set_values("near_dup_distance", dist, key_field="key")
    return pairs


def attach_audit(dataset: Any, audit: str, scores: dict[str, dict[str, Any]]) -> int:
    """Write audit scores ({key: {column: value}}) as fields `<audit>_<column>` on the samples with those keys
    (others untouched); re-running overwrites. Returns the number of samples updated."""
    from gpic_lab.fo.records import slug

    present = set(dataset.distinct("key")) & set(scores)
    columns = sorted({c for key in present for c in scores[key]})
    declare_schema(dataset, {f"{slug(audit)}_{slug(c)}": _kind_of(next(
        scores[k][c] for k in present if scores[k].get(c) is not None)) for c in columns
        if any(scores[k].get(c) is not None for k in present)})
    for c in columns:
        dataset.set_values(f"{slug(audit)}_{slug(c)}", {k: scores[k].get(c) for k in present}, key_field="key")
    return len(present)


def export_audit(name: str, audit: str, scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """attach_audit + save_views on the persistent dataset `name`; a no-op ({"updated": 0}) when it does not exist."""
    if name not in list_datasets():
        return {"dataset": name, "updated": 0, "views": {}}
    dataset = open_dataset(name)
    updated = attach_audit(dataset, audit, scores)
    return {"dataset": name, "updated": updated, "views": save_views(dataset)}


def day_one_views(dataset: Any) -> dict[str, Any]:
    """The saved views a researcher wants on day one, by name (built from fields present in the dataset)."""
    from fiftyone import ViewField as F

    schema = dataset.get_field_schema()
    views: dict[str, Any] = {
        "by_license_family": dataset.sort_by("license_family"),
        "non_permissive_leaks": dataset.match((F("permissive") == False) & (F("dropped") != True)),  # noqa: E712
        "dropped_by_reason": dataset.match(F("dropped") == True).sort_by("drop_reason"),  # noqa: E712
        "not_visible_captions": dataset.match(F("caption") == "NOT VISIBLE."),
        "caption_qc_failures": dataset.match((F("qc_flags").length() > 0)
                                             | (F("tags").filter(F().starts_with("dropped:caption")).length() > 0)),
    }
    for family in dataset.distinct("license_family"):
        views[f"license_{slug(family)}"] = dataset.match(F("license_family") == family)
    for tier in ("nano", "lite", "full"):
        views[f"tier_{tier}"] = dataset.match(F("split").contains(tier))
    if "near_dup_of" in schema:
        views["near_duplicate_clusters"] = (dataset.match(F("near_dup_of") != None)  # noqa: E711
                                            .sort_by("near_dup_of"))
    halluc = [n for n in schema if n.endswith("hallucination_rate")]
    if halluc:
        views["worst_hallucination_captions"] = dataset.exists(halluc[0]).sort_by(halluc[0], reverse=True)
    return views


def save_views(dataset: Any) -> dict[str, int]:
    """Save `day_one_views` on the dataset (overwriting) and return {view name: sample count}."""
    counts = {}
    for name, view in day_one_views(dataset).items():
        dataset.save_view(name, view, overwrite=True)
        counts[name] = len(view)
    return counts


def summary(dataset: Any) -> dict[str, Any]:
    """Sample count, fields, and counts per license family / caption type / drop reason."""
    return {"name": dataset.name, "samples": len(dataset), "fields": sorted(dataset.get_field_schema()),
            "license_family": dataset.count_values("license_family"),
            "caption_type": dataset.count_values("caption_type"),
            "drop_reason": {k: v for k, v in dataset.count_values("drop_reason").items() if k},
            "saved_views": dataset.list_saved_views()}


def delete_dataset(name: str) -> bool:
    """Delete the dataset if it exists (True when one was deleted)."""
    fo = _fo()
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
        return True
    return False


def list_datasets() -> list[str]:
    """Names of the persistent FiftyOne datasets."""
    return list(_fo().list_datasets())


def launch_app(name: str, port: int = 5151, address: str = "127.0.0.1", timeout: float = 120.0) -> AppHandle:
    """Launch the App for dataset `name` on address:port (remote mode, no browser opened) and wait until it
    answers; returns a handle whose close() stops every server process it started."""
    import psutil

    if address not in ("127.0.0.1", "localhost"):
        raise UsageError(f"the App binds to 127.0.0.1 only, not {address!r}")
    fo = _fo()
    if not fo.dataset_exists(name):
        raise UsageError(f"no FiftyOne dataset named {name!r} (create it with `gpic-lab fiftyone load`)")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise UsageError(f"port {port} on 127.0.0.1 is already in use")
    dataset = fo.load_dataset(name)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    import fiftyone.core.context as focx

    # remote sessions are refused inside a Jupyter kernel; there a local one with auto=False shows nothing by itself
    session = fo.launch_app(dataset, remote=not focx.is_notebook_context(), port=port, address="127.0.0.1",
                            auto=False)
    pids = [p.pid for p in me.children(recursive=False) if p.pid not in before]
    handle = AppHandle(session, f"http://127.0.0.1:{port}/datasets/{name}", pids)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout)
    except BaseException:
        handle.close()
        raise
    return handle


def points_frame(dataset: Any, points: Any, fields: Sequence[str] = ("split_dir", "license_family", "caption_type",
                                                                       "near_dup_of", "near_dup_distance",
                                                                       "uniqueness")) -> Any:
    """The visualization points joined with sample fields (by key), for plotting and tables."""
    import pandas as pd

    schema = dataset.get_field_schema()
    present = [f for f in fields if f in schema]
    table = pd.DataFrame({"key": dataset.values("key"), **{f: dataset.values(f) for f in present}})
    return points.merge(table, on="key", how="left")
