"""FiftyOne: browse shards and decisions in the App. ``bridge`` is the only module that imports ``fiftyone``.

- ``bridge``: ``load`` (``gpic-lab fiftyone load``), saved views, ``launch`` (``gpic-lab app``), audit exports.
- ``records``: sample rows from shards, catalogs and decisions (no FiftyOne import); lazy media cache.
- ``services``: a private bundled mongod and the App's processes; ``browser``: headless Chromium screenshots.

Reads shards, catalogs, decisions; writes a persistent FiftyOne dataset and its media cache.
"""
