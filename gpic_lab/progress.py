"""Progress bars and timestamped log lines for long work, the same in a terminal and in a headless run.

``enabled(mode)`` resolves ``--progress auto|on|off``: ``auto`` is on when stderr is a terminal or when the code runs
under ``gpic-lab run`` (``GPIC_LAB_RUN_DIR`` is set), so a multi-hour headless run shows rate and ETA in its
``run.log``; ``GPIC_LAB_PROGRESS=on|off`` overrides ``auto``. ``bar(...)`` is a tqdm bar on stderr with rate and ETA:
redrawn in place on a terminal, one line per update (at most every ``GPIC_LAB_PROGRESS_INTERVAL`` seconds, default
30) everywhere else, so logs stay readable. ``setup_logging()`` gives the ``gpic_lab`` loggers timestamped lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

MODES = ("auto", "on", "off")
ENV_MODE = "GPIC_LAB_PROGRESS"
ENV_INTERVAL = "GPIC_LAB_PROGRESS_INTERVAL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def enabled(mode: str | bool | None = "auto", stream: TextIO | None = None) -> bool:
    """Whether progress is shown for ``mode`` (``auto``/``on``/``off``, or a bool; None means ``auto``).

    Raises:
        UsageError: for any other mode string.
    """
    if isinstance(mode, bool):
        return mode
    mode = mode or "auto"
    if mode not in MODES:
        from gpic_lab.errors import UsageError

        raise UsageError(f"--progress {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "auto":
        mode = os.environ.get(ENV_MODE, "auto").strip().lower()
        if mode not in ("on", "off"):
            return _isatty(stream or sys.stderr) or bool(os.environ.get("GPIC_LAB_RUN_DIR"))
    return mode == "on"


class _Lines:
    """A file for tqdm that turns each in-place redraw (``\\r`` + line) into one full line (logs, notebooks)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _interval() -> float:
    try:
        return max(0.1, float(os.environ.get(ENV_INTERVAL, "30")))
    except ValueError:
        return 30.0


def bar(total: int | None = None, desc: str = "", unit: str = "it", mode: str | bool | None = "auto",
        initial: int = 0, **kwargs: Any) -> Any:
    """A tqdm bar on stderr with count, rate and ETA (disabled unless ``enabled(mode)``).

    Args:
        total: expected count (None: count and rate only).
        desc: label, e.g. ``"dedup embed"``.
        unit: what is counted (``img``, ``shard``...).
        mode: ``auto``/``on``/``off`` or a bool (see ``enabled``).
        initial: already done (resumed work).
        **kwargs: passed to tqdm (``iterable``, ``unit_scale``, ``postfix``...).
    """
    from tqdm import tqdm

    stream = sys.stderr
    tty = _isatty(stream)
    options: dict[str, Any] = {"file": stream if tty else _Lines(stream), "mininterval": 0.2 if tty else _interval(),
                               "dynamic_ncols": tty, "ncols": None if tty else 100, "smoothing": 0.1}
    if not tty:
        options["maxinterval"] = options["mininterval"]
    options.update(kwargs)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled(mode, stream), **options)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted, not the stream of the moment
    it was made (a notebook kernel, pytest's capture or a CLI run may swap stderr after logging is set up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # the base class assigns it; the live sys.stderr always wins
        pass


def setup_logging(level: int | str = logging.INFO) -> logging.Logger:
    """Timestamped ``gpic_lab`` log lines on stderr (idempotent: one handler however often it is called)."""
    logger = logging.getLogger("gpic_lab")
    if not any(getattr(h, "_gpic_lab", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
        handler._gpic_lab = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger


def log(name: str) -> logging.Logger:
    """The logger of a gpic_lab module (``log(__name__)``); lines appear once ``setup_logging`` ran."""
    return logging.getLogger(name if name.startswith("gpic_lab") else f"gpic_lab.{name}")
