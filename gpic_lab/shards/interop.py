"""Interop where users already are: Hugging Face `datasets` and lazy polars queries over catalogs.

- `to_hf_dataset(paths, streaming=...)`: GPIC shards (or a catalog Parquet) as a typed `datasets.Dataset`, or an
  `IterableDataset` that streams shard by shard (one generator input per shard, so `num_shards` equals the number
  of tars and `datasets` can split them across DataLoader workers).
- `scan_catalog(path)`: a polars LazyFrame over one or many catalog Parquet files; filters and aggregations are
  pushed down, so a 100M-row catalog never has to fit in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

StrPath = str | os.PathLike[str]


def hf_features(images: bool = True) -> Any:
    """The typed `datasets.Features` of a GPIC sample (GPIC JSON fields + shard + decoded image)."""
    import datasets as hfd

    s, i = hfd.Value("string"), hfd.Value("int64")
    fields = {"key": s, "shard": s, "license": s, "license_url": s, "attribution": s, "img_width": i,
              "img_height": i, "caption_type": hfd.ClassLabel(names=["tag", "short", "medium", "long"]),
              "caption": s, "split": hfd.List(s), "retrieved_at": s}
    if images:
        fields["image"] = hfd.Image()
    return hfd.Features(fields)


def _rows(shards: list[str], images: bool) -> Iterator[dict[str, Any]]:
    from gpic_lab.shards.reader import iter_samples

    for sample in iter_samples(shards, images=images):
        meta = sample.meta
        row = {k: meta[k] for k in ("key", "license", "license_url", "attribution", "img_width", "img_height",
                                    "caption_type", "caption", "split", "retrieved_at")}
        row["shard"] = sample.shard
        row["caption_type"] = row["caption_type"] or None  # collected, not yet captioned: a missing label
        if images:
            row["image"] = {"bytes": sample.image, "path": f"{sample.key}.{sample.image_ext}"}
        yield row


def to_hf_dataset(paths: StrPath | Iterable[StrPath], streaming: bool = False, images: bool = True,
                  cache_dir: StrPath | None = None) -> Any:
    """GPIC shards, shard directories or a catalog `.parquet` as a Hugging Face Dataset / IterableDataset.

    Args:
        paths: tar files, directories of tars, fsspec URLs, or one catalog Parquet file (metadata only).
        streaming: return an IterableDataset that reads shard by shard instead of materialising an Arrow cache.
        images: include the `image` column (decoded lazily by `datasets` into PIL images).
        cache_dir: where a non-streaming dataset's Arrow cache goes (default: the `datasets` cache under HF_HOME).
    """
    import datasets as hfd

    from gpic_lab.shards.reader import list_shards

    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if len(items) == 1 and str(items[0]).endswith(".parquet"):
        return _catalog_dataset(Path(items[0]), streaming)
    shards = list_shards(items)
    if not shards:
        raise UsageError(f"no GPIC shards (*.tar) found in {', '.join(map(str, items))}")
    features = hf_features(images)
    kwargs = {"gen_kwargs": {"shards": [[s] for s in shards], "images": images}, "features": features}
    if streaming:
        return hfd.IterableDataset.from_generator(_shard_rows, **kwargs)
    return hfd.Dataset.from_generator(_shard_rows, cache_dir=str(cache_dir) if cache_dir else None, **kwargs)


def _shard_rows(shards: list[list[str]], images: bool) -> Iterator[dict[str, Any]]:
    """Generator for `datasets`: `shards` is a list of one-shard lists so `datasets` can split it per worker."""
    for group in shards:
        yield from _rows(group, images)


def _catalog_dataset(path: Path, streaming: bool) -> Any:
    import datasets as hfd

    if not path.is_file():
        raise UsageError(f"{path}: catalog not found")
    return hfd.load_dataset("parquet", data_files=str(path), split="train", streaming=streaming)


def scan_catalog(path: StrPath | list[StrPath]) -> Any:
    """A polars LazyFrame over catalog Parquet file(s) or a glob (`data/catalogs/*.parquet`)."""
    import polars as pl

    items = path if isinstance(path, list) else [path]
    for item in items:
        text = str(item)
        if not any(ch in text for ch in "*?[") and not Path(text).exists():
            raise UsageError(f"{text}: catalog not found")
    return pl.scan_parquet([str(i) for i in items])


def catalog_summary(path: StrPath | list[StrPath]) -> Any:
    """Samples, images bytes and megapixels per license family × caption type, computed lazily."""
    import polars as pl

    lazy = scan_catalog(path)
    return (lazy.group_by("license_family", "caption_type")
            .agg(pl.len().alias("samples"), pl.col("image_bytes").sum().alias("image_bytes"),
                 (pl.col("img_width") * pl.col("img_height") / 1e6).sum().alias("megapixels"))
            .sort("license_family", "caption_type").collect())
