"""Source collection: Flickr and Wikimedia Commons API clients, a resumable GPIC shard writer, a local replay server.

Modules: http (budgeted, retrying, thread-safe HTTP client), limits (API call rate, per-host download concurrency
and bandwidth), base (candidates and pages), flickr + windows (search in upload-date windows past the 4,000-result
cap), commons (batches merged across property continuation), pipeline (license filter, id dedup, concurrent
downloads, block detection), queue (deferred downloads), writer (images -> GPIC shards + provenance parquet, exact-
byte dedup, atomic progress state), collector (the collection loop and entry points), replay + replay_apis +
replay_catalog (offline 127.0.0.1 replay server replaying the APIs' documented behaviours, for tests, the bench and
notebook 02), scenarios (each behaviour replayed, one table row each), report (notebook 02's tables and figures).
"""
