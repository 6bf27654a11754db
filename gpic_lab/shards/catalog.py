"""Metadata-only scan of GPIC shards into one Parquet table (no image decode unless check_images).

Rows are streamed shard by shard into a temp file (memory stays flat in the number of shards) and renamed at
the end; with on_error='fail' nothing is left behind when a problem is found, with 'quarantine' every sample
lands either in OUT or in OUT-stem.quarantine.parquet."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError
from gpic_lab.shards.fastscan import scan_local
from gpic_lab.shards.reader import Problem, Sample, is_url, iter_entries, list_shards
from gpic_lab.shards.schema import check_meta

META_COLUMNS = ("key", "license", "license_url", "attribution", "img_width", "img_height", "caption_type",
                "caption", "split", "retrieved_at")
QUARANTINE_COLUMNS = ("shard", "member", "key", "code", "message")


def schema() -> Any:
    """The catalog's Arrow schema."""
    import pyarrow as pa

    s, i = pa.string(), pa.int64()
    return pa.schema([("key", s), ("shard", s), ("license", s), ("license_url", s), ("attribution", s),
                      ("img_width", i), ("img_height", i), ("caption_type", s), ("caption", s),
                      ("split", pa.list_(s)), ("retrieved_at", s), ("image_format", s), ("image_bytes", i),
                      ("json_offset", i), ("json_size", i), ("image_offset", i), ("image_size", i),
                      ("source", s), ("license_family", s)])


def quarantine_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(c, pa.string()) for c in QUARANTINE_COLUMNS])


@functools.lru_cache(maxsize=4096)
def _family(license: str, license_url: str | None) -> str:
    """License family, cached per distinct (license, url) pair (a corpus holds few distinct ones)."""
    if importlib.util.find_spec("gpic_lab.core.licenses") is None:  # optional for a bare catalog
        return ""
    from gpic_lab.core.licenses import license_family

    return license_family(license, license_url)


def _source(license_url: str | None, attribution: str) -> str:
    """flickr | wikimedia | other from the attribution and URL text (attributions are unique per image, so this
    is computed, not cached)."""
    from gpic_lab.core.licenses import source_of

    return source_of({"attribution": attribution, "license_url": license_url})


def _provenance(license: str, license_url: str | None, attribution: str) -> tuple[str, str]:
    """(source, license family) of one record."""
    return _source(license_url, attribution), _family(license, license_url)


def _row(sample: Sample) -> dict[str, Any]:
    meta = sample.meta
    row = {c: meta[c] for c in META_COLUMNS}
    source, family = _provenance(meta["license"], meta["license_url"], meta["attribution"])
    row.update(shard=sample.shard, image_format=sample.sniffed_format or sample.image_ext,
               image_bytes=sample.image_size, json_offset=sample.json_offset, json_size=sample.json_size,
               image_offset=sample.image_offset, image_size=sample.image_size, source=source, license_family=family)
    return row


def _sample_problems(sample: Sample, check_images: bool, max_pixels: int, require_caption: bool = True) -> list[Problem]:
    from gpic_lab.shards.validate import check_image

    problems = [Problem(sample.shard, f"{sample.key}.json", "schema", m, sample.key)
                for m in check_meta(sample.meta, require_caption)]
    if check_images or sample.sniffed_format != sample.image_ext:
        problems += check_image(sample, max_pixels, decode=check_images)
    return problems


def scan_shard(shard: str, check_images: bool = False, max_pixels: int | None = None,
               fast: bool = True, require_caption: bool = True) -> tuple[Any, list[Problem]]:
    """One shard's valid rows (an Arrow table) and its problems; each sample is in exactly one of the two.

    Local shards first try `gpic_lab.shards.fastscan` (clean canonical shards only, identical rows); `fast=False`
    always uses the general scanner. require_caption=False accepts collected, not yet captioned records."""
    import pyarrow as pa

    from gpic_lab.shards.validate import DEFAULT_MAX_PIXELS

    if fast and not check_images and not is_url(shard):
        fast = scan_local(str(shard))  # None unless the shard is clean and canonical: then rescan in full
        if fast is not None:
            return _fast_table(shard, fast), []
    rows, problems = [], []
    for entry in iter_entries(shard, images=check_images):
        if isinstance(entry, Problem):
            problems.append(entry)
            continue
        found = _sample_problems(entry, check_images, max_pixels or DEFAULT_MAX_PIXELS, require_caption)
        if found:
            problems += found
        else:
            rows.append(_row(entry))
    sch = schema()
    columns = {name: [r[name] for r in rows] for name in sch.names}
    return pa.table(columns, schema=sch), problems


def _fast_table(shard: str, cols: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    from gpic_lab.shards.tiers import NESTED

    n = len(cols["key"])
    family = [_family(lic, url) for lic, url in zip(cols["license"], cols["license_url"], strict=True)]
    text = pa.string()  # an empty shard gives empty lists: their inferred type would be null
    tiers = pa.array([list(t) for t in NESTED], pa.list_(text))
    attribution, urls = pa.array(cols["attribution"], text), pa.array(cols["license_url"], text)
    cols.update(shard=[str(shard)] * n, source=sources(attribution, urls), license_family=family,
                split=tiers.take(pa.array(cols["split"], pa.int64())), attribution=attribution, license_url=urls)
    sch = schema()
    return pa.table({name: cols[name] for name in sch.names}, schema=sch)


def sources(attribution: Any, license_url: Any) -> Any:
    """`licenses.source_of` over whole Arrow columns (same rule, vectorised): wikimedia/wikipedia, then flickr,
    else other, searched case-insensitively in the attribution and license_url text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def has(word: str) -> Any:  # in either column, any case (one match per column: no joined, lowered copy)
        return pc.or_(pc.match_substring(attribution, word, ignore_case=True),
                      pc.match_substring(license_url, word, ignore_case=True))

    wiki = pc.or_(has("wikimedia"), has("wikipedia"))
    flickr = has("flickr")
    other = pa.scalar("other")
    return pc.if_else(wiki, pa.scalar("wikimedia"), pc.if_else(flickr, pa.scalar("flickr"), other))


def _scan_job(args: tuple[str, bool, bool]) -> tuple[Any, list[Problem]]:
    shard, check_images, require_caption = args
    return scan_shard(shard, check_images, require_caption=require_caption)


def iter_scans(shards: list[str], check_images: bool, workers: int | None, progress: bool,
               require_caption: bool = True) -> Iterator[tuple[Any, list[Problem]]]:
    """(table, problems) per shard in shard order, from a process pool when there are several shards."""
    workers = workers or min(len(shards), os.cpu_count() or 1)
    jobs = [(s, check_images, require_caption) for s in shards]

    def wrap(it: Iterable) -> Iterable:
        if not progress:
            return it
        from tqdm import tqdm

        return tqdm(it, total=len(shards), unit="shard", desc="catalog", file=sys.stderr)

    if workers <= 1 or len(shards) == 1:
        yield from wrap(map(_scan_job, jobs))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from wrap(pool.map(_scan_job, jobs))


def scan(paths: Iterable[str | os.PathLike[str]], check_images: bool = False, workers: int | None = None,
         require_caption: bool = True) -> tuple[Any, list[Problem]]:
    """The whole catalog in memory (for notebooks and small inputs) and every problem found."""
    import pyarrow as pa

    tables, problems = [], []
    for table, found in iter_scans(list_shards(paths), check_images, workers, False, require_caption):
        tables.append(table)
        problems += found
    return (pa.concat_tables(tables) if tables else schema().empty_table()), problems


def check_output(out: str | os.PathLike[str], shards: list[str]) -> None:
    """UsageError unless OUT can be written without destroying anything: neither OUT nor its quarantine file may be
    an input shard, and an existing OUT must be a Parquet file (an earlier catalog), never a shard or other file."""
    for target in (Path(out), quarantine_path(out)):
        resolved = target.resolve()
        if any(not is_url(s) and Path(s).resolve() == resolved for s in shards):
            raise UsageError(f"-o {out}: {target} is one of the input shards; writing the catalog would replace it")
        if target.is_dir():
            raise UsageError(f"-o {out}: {target} is a directory")
    if Path(out).is_file():
        with open(out, "rb") as fh:
            if fh.read(4) != b"PAR1":
                raise UsageError(f"-o {out}: exists and is not a Parquet file; refusing to replace it")


def quarantine_path(out: str | os.PathLike[str]) -> Path:
    """OUT.parquet → OUT.quarantine.parquet (same directory, same stem)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.quarantine.parquet")


def write_catalog(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], on_error: str = "fail",
                  check_images: bool = False, workers: int | None = None, progress: bool = False,
                  require_caption: bool = True) -> dict[str, Any]:
    """Write the catalog; returns {'shards', 'rows', 'problems': [Problem...], 'written': bool}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpic_lab.fsio import atomic_path

    if on_error not in ("fail", "quarantine"):
        raise UsageError(f"--on-error must be 'fail' or 'quarantine', not {on_error!r}")
    shards = list_shards(paths)
    check_output(out, shards)
    problems: list[Problem] = []
    rows = 0
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema()) as writer:
            for table, found in iter_scans(shards, check_images, workers, progress, require_caption):
                writer.write_table(table)
                rows += table.num_rows
                problems += found
        if problems and on_error == "fail":
            raise _CatalogFailed(problems, len(shards), rows)
        if on_error == "quarantine":
            q = pa.Table.from_pylist([{"shard": p.shard, "member": p.member, "key": p.key, "code": p.code,
                                       "message": p.message} for p in problems], schema=quarantine_schema())
            with atomic_path(quarantine_path(out)) as qtmp:
                pq.write_table(q, qtmp)
    if on_error == "fail":  # a clean catalog has no quarantine: drop one an earlier quarantine run left there
        quarantine_path(out).unlink(missing_ok=True)
    return {"shards": len(shards), "rows": rows, "problems": problems, "written": True}


class _CatalogFailed(Exception):
    """Raised inside the atomic write so the temp file is removed; turned into a result by catalog_or_fail."""

    def __init__(self, problems: list[Problem], shards: int, rows: int) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems, self.shards, self.rows = problems, shards, rows


def catalog_or_fail(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """write_catalog, but a failed 'fail'-mode run returns its problems with written=False and leaves no OUT:
    a catalog (and quarantine file) of an earlier run at that path is removed, so nothing stale looks current."""
    try:
        return write_catalog(paths, out, **kwargs)
    except _CatalogFailed as exc:
        stale = [p for p in (Path(out), quarantine_path(out)) if p.is_file()]
        for path in stale:
            path.unlink()
        return {"shards": exc.shards, "rows": exc.rows, "problems": exc.problems, "written": False,
                "removed": [str(p) for p in stale]}
