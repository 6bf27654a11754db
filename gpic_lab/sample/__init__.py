"""The bundled sample corpus (``data/sample/``) and its planted problems, from images inside installed wheels.

- ``corpus``: ``gpic-lab sample build`` (train/val/test/raw shards, ``ground_truth.csv``, ``sources.json``).
- ``broken``: one small shard per ``validate`` problem (``gpic-lab sample broken``).
- ``synth``: procedural images with known content (for honest captions and benches).
"""
