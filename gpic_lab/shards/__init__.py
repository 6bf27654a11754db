"""GPIC shards: WebDataset tars of ``{key}.json`` + ``{key}.jpg|png`` pairs, read without ever extracting.

- ``sources``: shard lists (brace ranges, globs, fsspec URLs) and worker slices (``select``).
- ``reader``: ``list_shards``, ``iter_samples`` (raises ``ShardError``), ``iter_entries`` (samples and counted
  problems), ``ShardIndex`` (random access by key), ``read_range``; ``Sample``, ``Problem``.
- ``tarscan``: the strict header scanner every reader uses; ``remote``: HTTP(S) streaming and byte ranges.
- ``schema``: the JSON record (``new_record``, ``check_meta``, ``CAPTION_TYPES``, ``TIERS``).
- ``tiers``: the one tier rule (Nano / Lite / Full = first 1 % / 10 % / 100 % of train shards).
- ``writer``: ``write_shard`` (deterministic tars; only ``pack`` and the sample builders write tars).
- ``validate`` (``gpic-lab validate``), ``catalog`` + ``fastscan`` (``gpic-lab catalog`` -> Parquet; ``fastscan`` also
  gives pack its metadata-only samples) + ``ustar`` (the fast scan's batched header checks),
  ``interop`` (Hugging Face ``datasets``, polars), ``explore`` (notebook 01's tables and figures, pandas).
- ``explore_lazy`` + ``explore_figures``: the same tables through polars lazy scans of a catalog (flat memory) and
  their figures; ``buckets``: repeated keys counted per key-hash bucket (tables larger than memory).

Reads shards (local paths or URLs); writes catalogs and tars only when asked.
"""
