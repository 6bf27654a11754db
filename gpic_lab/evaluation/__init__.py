"""FD-DINOv2 evaluation as GPIC specifies it (dgm-eval's metric on DINOv2 ViT-L/14 features).

- ``preprocess``: GPIC-256 for reference images (center crop + Pillow bicubic 256), then DINOv2's input transform.
- ``features``: streaming features of images and shards; ``fd``: float64 statistics and the Fréchet distance;
  ``prdc``: precision/recall/density/coverage and MMD.
- ``refstats``: reference statistics in GPIC's npz layout (``gpic-lab refstats``; partial + merge).
- ``evaluate``: ``evaluate`` (``gpic-lab eval``), oracle and metric tables; ``eval_prompts``: the fixed eval
  captions (``gpic-lab eval-prompts``); ``published``: GPIC's Tables 2 and 3, to show beside ours.

Reads generated images, shards and npz files; writes npz + provenance JSON and results JSON.
"""
