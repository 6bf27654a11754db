"""Project roots, each overridable by an environment variable. Nothing here does I/O at import time."""

from __future__ import annotations

import os
from pathlib import Path


def _package_checkout() -> Path | None:
    """The checkout this package is imported from (an editable install or PYTHONPATH), or None when it is
    installed elsewhere (site-packages)."""
    candidate = Path(__file__).resolve().parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "gpic_lab").is_dir():
        return candidate
    return None


def _cwd_checkout() -> Path | None:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "gpic_lab").is_dir():
            return candidate
    return None


def project_root() -> Path:
    """The checkout root: $GPIC_LAB_ROOT, else the nearest parent of cwd holding gpic_lab/ and pyproject.toml."""
    env = os.environ.get("GPIC_LAB_ROOT")
    if env:
        return Path(env).resolve()
    return _cwd_checkout() or Path.cwd().resolve()


def _root_env(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value).resolve() if value else project_root() / default


def data_root() -> Path:
    """$GPIC_LAB_DATA or <root>/data."""
    return _root_env("GPIC_LAB_DATA", "data")


def sample_dir() -> Path:
    """The bundled sample corpus: <data>/sample."""
    return data_root() / "sample"


def interim_dir(stage: str) -> Path:
    """Per-stage outputs (decisions, captions, embeddings): <data>/interim/<stage>."""
    return data_root() / "interim" / stage


def resolve_data(path: str | os.PathLike[str]) -> Path | str:
    """A notebook/CLI path parameter: absolute paths as given, URLs (`s3://...`, `https://...`) as the same
    string (a Path would fold their `//`), relative paths under the data root."""
    if "://" in str(path):
        return str(path)
    p = Path(path)
    return p if p.is_absolute() else data_root() / p


def runs_root() -> Path:
    """$GPIC_LAB_RUNS or <root>/papermill_runs."""
    return _root_env("GPIC_LAB_RUNS", "papermill_runs")


def figures_root() -> Path:
    """$GPIC_LAB_FIGURES or <root>/figures."""
    return _root_env("GPIC_LAB_FIGURES", "figures")


def state_root() -> Path:
    """Where FiftyOne's database, caches, tiny models and tool config live: $GPIC_LAB_STATE; else <checkout>/.state
    for the checkout around the working directory, or the one the package is imported from; else (an installed
    package used outside any checkout) the user's $XDG_STATE_HOME/gpic-lab (default ~/.local/state/gpic-lab).
    Never a directory per working directory: a run resumed from elsewhere finds the same state."""
    value = os.environ.get("GPIC_LAB_STATE")
    if value:
        return Path(value).resolve()
    env_root = os.environ.get("GPIC_LAB_ROOT")
    checkout = Path(env_root).resolve() if env_root else _cwd_checkout() or _package_checkout()
    if checkout is not None:
        return checkout / ".state"
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return (base / "gpic-lab").resolve()


def configure_environment() -> None:
    """Point FiftyOne's, matplotlib's and Jupyter's state inside the project unless the user already chose one
    (called by the CLI). Model caches are left alone: Hugging Face and torch hub models come from the user's own
    caches (``HF_HOME``, ``TORCH_HOME``, default ``~/.cache``), where they already keep them."""
    state = state_root()
    defaults = {
        "FIFTYONE_DATABASE_DIR": state / "fiftyone" / "db",
        "FIFTYONE_CONFIG_DIR": state / "fiftyone" / "config",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "MPLCONFIGDIR": state / "matplotlib",
        "IPYTHONDIR": state / "ipython",
        "JUPYTER_RUNTIME_DIR": state / "jupyter" / "runtime",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, str(value))
