"""FiftyOne: browse shards and decisions in the App. ``bridge`` is the only module that imports ``fiftyone``.

- ``bridge``: ``load`` (``gpic-lab fiftyone load``), saved views, ``launch`` (``gpic-lab app``), audit exports.
- ``records``: sample rows from shards, catalogs and decisions (no FiftyOne import); lazy media cache.
- ``services``: a private bundled mongod and the App's processes; ``browser``: headless Chromium screenshots;
  ``cdp``: a Chromium tab driven over the DevTools protocol (hover, click, wait, clip).
- ``review``: sample tags as review marks (``gpic-lab review export``), saved key views, the App on saved views.
- ``figures``: the embedding map as a self-contained plotly scatter with hover.

Reads shards, catalogs, decisions; writes a persistent FiftyOne dataset and its media cache.
"""
