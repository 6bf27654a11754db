"""Models where Hugging Face users keep them: a local directory or file as given, else a hub id (``org/name``,
optionally ``org/name@revision``) resolved through the standard Hugging Face cache.

The cache is wherever ``huggingface_hub`` puts it (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``); gpic_lab never redirects it, so a model the user already downloaded is found. Online,
a hub id that is not cached is downloaded into that cache; with ``HF_HUB_OFFLINE=1`` it is resolved from the cache
only, and a miss is a one-line error that says how to fetch it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gpic_lab.errors import GpicError, UsageError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


def is_hub_id(spec: str | os.PathLike[str]) -> bool:
    """``org/name`` (or ``org/name@rev``) that is not an existing local path."""
    text = str(spec)
    return bool(HUB_ID.match(text)) and not Path(text).expanduser().exists()


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (read at each call: huggingface_hub reads it once, when imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """The Hugging Face hub cache in effect (``HF_HUB_CACHE`` > ``HF_HOME/hub`` > ``XDG_CACHE_HOME`` or ``~/.cache``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve(spec: str | os.PathLike[str], what: str = "model") -> Path:
    """A local path as given, or the snapshot directory of a hub id in the HF cache (downloaded when online).

    Args:
        spec: a directory, a file, or ``org/name[@revision]``.
        what: the kind of model, for messages (``Qwen3-VL``, ``DINOv2``).

    Raises:
        UsageError: not a path and not a hub id; a hub id not cached while offline; an unknown or gated repo.
        GpicError: the download failed (network).
    """
    path = Path(str(spec)).expanduser()
    if path.exists():
        return path
    if not is_hub_id(spec):
        raise UsageError(f"{what} {spec}: model directory not found (no such file or directory, and not a Hugging Face "
                         "hub id org/name)")
    repo, _, revision = str(spec).partition("@")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo, revision=revision or None, cache_dir=cache_dir(),
                                      local_files_only=offline()))
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE=1" if offline() else "the hub could not be reached"
        raise UsageError(f"{what} {spec}: not in the HF cache {cache_dir()} and {why}; fetch it where "
                         f"there is network with `hf download {repo}` (same HF_HOME), or give a local directory") \
            from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as exc:
        raise UsageError(f"{what} {spec}: {type(exc).__name__} on the Hugging Face hub (a typo, a private or "
                         "gated repo? `hf auth login` for gated ones)") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise GpicError(f"{what} {spec}: download failed: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
