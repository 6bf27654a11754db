"""The only code that writes GPIC tars: deterministic members (given order, fixed mtime/uid/gid/mode, ustar
headers), JSON then image per sample, written to a temp file and renamed. Re-writing a shard read back with
gpic_lab.shards.reader gives byte-identical bytes, because raw JSON bytes are kept as they were."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpic_lab.fsio import atomic_path

MTIME = 0
MODE = 0o644


def encode_meta(meta: dict[str, Any]) -> bytes:
    """Canonical JSON bytes for a record: GPIC field order as given, UTF-8, compact separators."""
    return json.dumps(meta, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path: str | os.PathLike[str], samples: Iterable[Any]) -> dict[str, int]:
    """Write samples to `path` atomically; returns {'samples': n, 'bytes': size}.

    Each sample is a gpic_lab.shards.reader.Sample (its raw json_bytes are kept) or a tuple
    (key, meta_dict_or_json_bytes, image_bytes, image_ext).
    """
    count, seen = 0, set()
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples:
                key, meta, image, ext = _unpack(sample)
                if key in seen:
                    raise ValueError(f"{path}: sample {key} given twice (a shard holds each key once)")
                seen.add(key)
                raw = meta if isinstance(meta, bytes) else encode_meta(meta)
                tar.addfile(_info(f"{key}.json", len(raw)), io.BytesIO(raw))
                tar.addfile(_info(f"{key}.{ext}", len(image)), io.BytesIO(image))
                count += 1
    return {"samples": count, "bytes": Path(path).stat().st_size}


def _unpack(sample: Any) -> tuple[str, bytes | dict[str, Any], bytes, str]:
    if isinstance(sample, tuple):
        key, meta, image, ext = sample
    else:
        key, meta, image, ext = sample.key, sample.json_bytes, sample.image, sample.image_ext
    if not isinstance(key, str) or not key or not key.isprintable() or any(c in key for c in "/\\") or key.startswith("."):
        raise ValueError(f"sample key {key!r} cannot be a flat tar member name")
    if image is None:
        raise ValueError(f"sample {key}: image bytes are required to write a shard")
    if ext not in ("jpg", "png"):
        raise ValueError(f"sample {key}: image extension must be jpg or png, not {ext!r}")
    return key, meta, image, ext
