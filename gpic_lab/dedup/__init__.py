"""Near-duplicate removal (GPIC's stage 3): embeddings, a k-NN graph and GPIC's two-tier rule.

- ``embed``: encoders by name (``load_encoder``: ``efficientnet-thumb``, ``efficientnet``, ``phash``, ``dhash``,
  ``sscd``, ``dinov2``); ``embed_cache``: ``embed_shards`` caches one npz per shard and encoder configuration.
- ``knn``: the FAISS (or exact) neighbour graph; ``rule``: ``run_dedup`` / ``dedup_embeddings`` (exact SHA-256
  duplicates, then pairs and components), ``default_rule``; leakage against held-out shards.
- ``collision``: GPIC's collision model D(N) = A·N^β; ``report``: notebook 04's tables and figures.

Reads shards; writes ``decisions.parquet`` (+ counts, leakage tables) and the embedding cache.
"""
