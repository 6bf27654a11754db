"""Dataset audits, each a pure table builder (records and decisions in, DataFrames out) plus figures.

- ``license``: license family × source × split × tier, leaks, attribution problems, attribution CSV (notebook 21).
- ``hallucination`` + ``objects``: POPE-style object hallucination (CHAIR); ``consistency``: cross-level
  consistency; ``judge``: GPIC's five-axis LLM judge; ``captions``: notebook 22's combined caption audit.
- ``bias``: versioned word lists (``wordlists/``), co-occurrence, faces vs person mentions (notebook 23).
- ``review``: ``ReviewTable``, verdicts a researcher records per audit item.

Reads shards, catalogs and decisions; never mutates them; writes audit tables where a notebook asks.
"""
