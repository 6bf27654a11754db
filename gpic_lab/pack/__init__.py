"""Packaging (GPIC's stage 5): apply every decisions table, split, tier and write GPIC tars.

- ``packer``: ``pack`` (``gpic-lab pack``): plan (stratified train/val/test, balanced train shards, Nano/Lite/Full
  tiers) and deterministic shard writing; the only code that rewrites tars.
- ``writing``: one task per output shard, in this process, a local process pool or on Dask (``--workers``,
  ``--engine``), byte-identical output whatever runs it.
- ``manifest``: ``manifest.json`` (sha256 per shard), the datasheet, ``verify`` (``gpic-lab verify``).
- ``preset``: ``--preset gpic`` (GPIC's released layout) and the layout a pack writes (``--dry-run``, ``plan_layout``).
- ``card``: the dataset card ``OUT/README.md`` (``datasets.load_dataset(OUT)``), licence and totals vs GPIC's.
- ``report``: notebook 06's tables and figures.
- ``plan_io``: the plan's table reads through pyarrow datasets (dropped rows only, a catalog's distinct shards).

Reads decisions tables, catalogs, caption tables and the source shards; writes ``OUT/{train,val,test}/*.tar``,
``manifest.json``, ``datasheet.{json,md}``, ``README.md``.
"""
