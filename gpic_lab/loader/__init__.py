"""The training loader: GPIC shards -> augmented uint8 batches for PyTorch, exactly once per epoch.

- ``stream``: shard units dealt over nodes × ranks × workers, resumable at sample granularity; tiers.
- ``tier_select``: which shards hold a tier, from the pack manifest or the records' ``split`` field.
- ``torch_loader``: ``GpicIterableDataset``, ``make_loader``, ``ResumeTracker``.
- ``augment``: GPIC's train transform (crop scale [0.8, 1.0], square crop, resize 256) and the eval transform.
- ``batch_decode``: ``BatchDecoder`` (nvJPEG on the GPU, CPU fallback); ``costs``: what feeding a run costs.

Reads shards (local or HTTP); writes nothing.
"""
