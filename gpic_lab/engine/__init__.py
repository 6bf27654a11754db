"""The stage contract: any per-shard stage, run resumably on the local pool or Dask.

- ``records``: ``Decision`` (key, keep, reason, scores, extras), ``decisions_frame``, ``reason_counts``.
- ``stages``: ``run_stage`` (``gpic-lab stage``), the stage registry, ``schema_stage``.
- ``backends``: where per-shard tasks run (in process, a local process pool, a Dask cluster).
- ``merge``: the out-of-core merge of per-shard tables; ``review``: review marks as a stage-``review`` table;
  ``rethreshold``: new decisions from stored scores (``gpic-lab rethreshold``).

Writes ``OUT/decisions.parquet``, ``counts.csv``, ``reasons.csv``, ``summary.json`` and ``done/<shard>.done``
markers (docs/engine.md).
"""
