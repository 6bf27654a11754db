"""Source collection: Flickr and Wikimedia Commons API clients, a resumable GPIC shard writer, a local replay server.

Modules: http (budgeted, rate-limited, retrying HTTP client), base (candidates and pages), flickr, commons (API
sources yielding candidates page by page with a resumable cursor), writer (images -> GPIC shards + provenance
parquet, exact-byte dedup, atomic progress state), collector (the collection loop tying them together), replay
(offline 127.0.0.1 replay server with fault injection, for tests and notebook 02), report (notebook 02's tables
and figures).
"""
