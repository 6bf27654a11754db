"""Vectorised checks of many canonical ustar headers at once, for the fast metadata scan (`shards.fastscan`).

A header passes when it is what `gpic_lab.shards.writer` and tarfile write for a flat GPIC member: the name
`<64 lowercase hex>.json|jpg|png` NUL-padded to 100 bytes, an 11-digit octal size ended by NUL or space, a 6-digit
checksum ended by NUL and space (or 7 digits and one terminator) that matches the header's bytes, type '0' (or NUL),
an empty link name, the 'ustar' magic and an empty name prefix. Mode, owner and mtime fields are not read.
"""

from __future__ import annotations

from typing import Any

BLOCK = 512


def _octal(digits: Any) -> Any:
    """Rows of ASCII octal digits (uint8) to integers."""
    import numpy as np

    weights = 8 ** np.arange(digits.shape[1] - 1, -1, -1, dtype=np.int64)
    return (digits.astype(np.int64) - 48) @ weights


def _octal_digits(cells: Any) -> Any:
    """Per row: are all these bytes ASCII '0'-'7'? (uint8 arithmetic wraps bytes below '0' to large values)"""
    return ((cells - 48) <= 7).all(axis=1)


def _terminator(column: Any) -> Any:
    return (column == 0) | (column == 32)


def _byte_sums(a: Any) -> Any:
    """The sum of the bytes of each row, as int64 (a reduction that upcasts in small buffers: no full-size
    temporary, which on a VM that hands out fresh pages slowly costs more than the sum itself)."""
    import numpy as np

    return a.sum(axis=1, dtype=np.uint32).astype(np.int64)


def headers_ok(blocks: bytes | bytearray) -> bool:
    """Whether every 512-byte header in ``blocks`` (concatenated) is a canonical GPIC member header (see module doc).

    Args:
        blocks: header blocks; the caller has already matched the '.json'/'.jpg\\0'/'.png\\0' extensions and
            each image header's stem with its JSON header's.
    """
    import numpy as np

    if not blocks:
        return True
    a = np.frombuffer(blocks, dtype=np.uint8).reshape(-1, BLOCK)
    try:
        if a[:, :64].tobytes().translate(None, b"0123456789abcdef") or (a[:, 64] != ord(".")).any():
            return False  # names: 64 lowercase hex digits and a dot
        if np.count_nonzero(a[:, 69:100]) or np.count_nonzero(a[:, 157:257]) or np.count_nonzero(a[:, 345]):
            return False  # name padding, link name, name prefix
        if not (a[:, 257:262] == np.frombuffer(b"ustar", dtype=np.uint8)).all():
            return False
        if not ((a[:, 156] == ord("0")) | (a[:, 156] == 0)).all():
            return False  # regular files only
        if not (_octal_digits(a[:, 124:135]) & _terminator(a[:, 135])).all():
            return False  # size: 11 octal digits
        seven = (a[:, 154] - 48) <= 7  # a 7-digit checksum has one terminator, a 6-digit one two
        form = _octal_digits(a[:, 148:154]) & np.where(seven, _terminator(a[:, 155]),
                                                       _terminator(a[:, 154]) & _terminator(a[:, 155]))
        stored = np.where(seven, _octal(a[:, 148:155]), _octal(a[:, 148:154]))
        sums = _byte_sums(a) - a[:, 148:156].sum(axis=1, dtype=np.int64) + 256
        return bool(form.all() and np.array_equal(stored, sums))
    finally:
        del a  # release the buffer export before the caller reuses a bytearray
