"""Declared stage parameters: every registered stage lists its parameters (name, type, default, range or choices,
help) with `declare`, and `check` validates the values given with ``gpic-lab stage -p KEY=VALUE`` (or
``run_stage(params=...)``) before any shard is read: an unknown name, a value of the wrong type ("no" and "maybe"
are not booleans, 16.5 is not an integer), NaN or infinity, a value outside the range, or a value nested deeper
than a parameter can be is a UsageError (exit 2) naming the stage, the parameter and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpic_lab.errors import UsageError

KINDS = ("bool", "int", "float", "str", "choice", "choices", "path", "paths", "pair", "level-pairs")
MAX_DEPTH = 4  # the deepest a declared value goes: {"level": [min, max]} (level-pairs)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One stage parameter.

    Attributes:
        name: the ``-p`` key.
        kind: one of KINDS: bool, int, float, str, choice (one of `choices`), choices (a list of them, or a
            comma-separated string), path, paths (one path or a list), pair ([min, max] numbers), level-pairs
            (a mapping of `choices` levels to pairs).
        default: the value the stage uses when the parameter is not given.
        help: one line.
        low / high: the inclusive range of numbers (also of each number in a pair); None = unbounded.
        low_open: the lower bound itself is excluded (> low rather than >= low).
        choices: the allowed values of choice/choices, or the levels of level-pairs.
        nullable: null (JSON ``null``) is allowed and means "the stage's own default".
    """

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def range_text(self) -> str:
        """The range or choices in words, e.g. ``>= 1``, ``(0, 1]``, ``quality|safety``."""
        if self.choices and self.kind in ("choice", "choices"):
            return "|".join(self.choices)
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return "-"
        if hi is None:
            return f"{'>' if self.low_open else '>='} {lo:g}"
        if lo is None:
            return f"<= {hi:g}"
        return f"{'(' if self.low_open else '['}{lo:g}, {hi:g}]"


def declare(*specs: ParamSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach parameter specs to a stage function (read back by `specs_of`)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or any(s.kind not in KINDS for s in specs):
        raise ValueError(f"bad parameter declaration {names}")

    def attach(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.param_specs = tuple(specs)  # type: ignore[attr-defined]
        return fn

    return attach


def specs_of(fn: Callable[..., Any]) -> tuple[ParamSpec, ...] | None:
    """The declared parameters of a stage function, or None for an undeclared ``module:function`` stage."""
    return getattr(fn, "param_specs", None)


def check(stage: str, specs: Iterable[ParamSpec] | None, params: Mapping[str, Any]) -> dict[str, Any]:
    """The given params, validated against `specs` (bool strings "true"/"false" become booleans); UsageError on the
    first bad one. Without specs (an undeclared stage) only depth and finiteness are checked."""
    out: dict[str, Any] = {}
    declared = {s.name: s for s in specs} if specs is not None else None
    for name, value in params.items():
        _check_shape(stage, name, value)
        if declared is None:
            out[name] = value
            continue
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UsageError(f"stage {stage}: unknown parameter {name!r}; known: {known} "
                             f"(gpic-lab stage {stage} --list-params)")
        out[name] = _value(stage, declared[name], value)
    return out


def _check_shape(stage: str, name: str, value: Any) -> None:
    """No value nests deeper than MAX_DEPTH and no number in it is NaN or infinite."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UsageError(f"stage {stage}: parameter {name!r} is nested deeper than any parameter can be")
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"stage {stage}: parameter {name!r} must be finite, got {v}")
        if isinstance(v, Mapping):
            stack += [(x, depth + 1) for x in v.values()]
        elif isinstance(v, (list, tuple)):
            stack += [(x, depth + 1) for x in v]


def _fail(stage: str, spec: ParamSpec, value: Any, expected: str) -> UsageError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return UsageError(f"stage {stage}: parameter {spec.name!r} expects {expected}, got {shown}")


def _value(stage: str, spec: ParamSpec, value: Any) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise _fail(stage, spec, value, f"a {spec.kind} (null is not allowed)")
    checker = _CHECKERS[spec.kind]
    return checker(stage, spec, value)


def _bool(stage: str, spec: ParamSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(stage, spec, value, "true or false")


def _number(stage: str, spec: ParamSpec, value: Any, integer: bool) -> int | float:
    ok = type(value) is int or (not integer and type(value) is float)
    if not ok:
        raise _fail(stage, spec, value, "an integer" if integer else "a number")
    _in_range(stage, spec, value)
    return value


def _in_range(stage: str, spec: ParamSpec, value: float) -> None:
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    if too_low or (spec.high is not None and value > spec.high):
        raise _fail(stage, spec, value, f"a value in {spec.range_text()}")


def _str(stage: str, spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(stage, spec, value, "text")
    return value


def _choice(stage: str, spec: ParamSpec, value: Any) -> str:
    if value not in spec.choices:
        raise _fail(stage, spec, value, f"one of {spec.range_text()}")
    return value


def _choices(stage: str, spec: ParamSpec, value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or any(not isinstance(i, str) or i not in spec.choices for i in items):
        raise _fail(stage, spec, value, f"a non-empty list of {spec.range_text()} (or a comma-separated string)")
    return items


def _paths(stage: str, spec: ParamSpec, value: Any) -> str | list[str]:
    if isinstance(value, str) and value:
        return value
    if spec.kind == "paths" and isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return value
    raise _fail(stage, spec, value, "a path" if spec.kind == "path" else "a path or a list of paths")


def _pair(stage: str, spec: ParamSpec, value: Any) -> list[float]:
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) in (int, float) for v in value)
            and value[0] <= value[1]):
        raise _fail(stage, spec, value, "[min, max] numbers with min <= max")
    for v in value:
        _in_range(stage, spec, v)
    return value


def _level_pairs(stage: str, spec: ParamSpec, value: Any) -> dict[str, list[float]]:
    if not isinstance(value, dict) or not value or any(k not in spec.choices for k in value):
        raise _fail(stage, spec, value, f"a mapping of {'|'.join(spec.choices)} to [min, max]")
    return {k: _pair(stage, spec, v) for k, v in value.items()}


_CHECKERS: dict[str, Callable[[str, ParamSpec, Any], Any]] = {
    "bool": _bool, "int": lambda st, sp, v: _number(st, sp, v, True),
    "float": lambda st, sp, v: _number(st, sp, v, False), "str": _str, "choice": _choice, "choices": _choices,
    "path": _paths, "paths": _paths, "pair": _pair, "level-pairs": _level_pairs}


def table(stage: str, specs: Iterable[ParamSpec] | None) -> str:
    """The ``--list-params`` text: one line per parameter (name, type, default, range or choices, help)."""
    if specs is None:
        return f"stage {stage}: no declared parameters (any -p KEY=VALUE is passed through unchecked)"
    rows = [(s.name, s.kind + ("|null" if s.nullable else ""), _shown(s.default), s.range_text(), s.help)
            for s in specs]
    if not rows:
        return f"stage {stage}: no parameters"
    head = ("name", "type", "default", "range", "help")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in [head, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _shown(value: Any) -> str:
    import json

    return "null" if value is None else json.dumps(value, separators=(",", ":"))
