"""Record-level knowledge every stage shares, below the shard layer: no stage imports another for these.

- ``licenses``: license strings and URLs -> SPDX id, family (CC-BY, CC0, PD, NKCR, ...), permissive verdict and
  reason; ``license_family``, ``source_of`` (Flickr / Wikimedia) of a record; attribution strings.
- ``images``: ``to_8bit`` (16-bit grey -> 8 bits), ``to_rgb`` (any mode -> RGB, transparency onto white).
- ``npz``: ``open_npz`` / ``load_member`` read ``.npz`` files people download without ever unpickling.

Reads and writes nothing on its own.
"""
