"""Strict notebook parameters: the one cell tagged `parameters` holds only annotated literal assignments
(`name: type = literal  # help`). Overrides are checked against it before any kernel starts: an unknown name
or a value of the wrong type is a UsageError naming the parameter and listing the valid ones."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpic_lab.errors import UsageError

MAX_VALUE_CHARS = 1 << 20  # a -p value longer than this is refused before parsing (OUR ASSUMPTION: parameters are
# paths, numbers and short lists; the Python parser can exhaust memory or recursion on a long expression)
TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter."""

    name: str
    type: type
    default: Any
    help: str = ""


def load_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook JSON (nbformat 4)."""
    try:
        nb = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such notebook") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a notebook ({exc})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise UsageError(f"{path}: not a notebook (no list of cells)")
    return nb


def parameters_cell(nb: dict[str, Any], where: str = "notebook") -> dict[str, Any]:
    """The single code cell tagged `parameters` (UsageError if there are none or several)."""
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise UsageError(f"{where}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    if cells[0].get("cell_type") != "code":
        raise UsageError(f"{where}: the 'parameters' cell must be a code cell")
    return cells[0]


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def parse_parameters(nb: dict[str, Any], where: str = "notebook") -> dict[str, Param]:
    """Declared parameters, in order. Only `name: type = literal` statements are allowed."""
    source = _source(parameters_cell(nb, where))
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UsageError(f"{where}: parameters cell does not parse ({exc.msg}, line {exc.lineno})") from None
    comments = _comments(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise UsageError(f"{where}: line {node.lineno} of the parameters cell is not `name: type = literal`")
        annotation = ast.unparse(node.annotation)
        if annotation not in TYPES:
            raise UsageError(f"{where}: parameter {node.target.id!r} has type {annotation!r}; use one of {', '.join(TYPES)}")
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise UsageError(f"{where}: parameter {node.target.id!r} has a non-literal default") from None
        param = Param(node.target.id, TYPES[annotation], default, comments.get(node.lineno, ""))
        if not _is_type(default, param.type):
            raise UsageError(f"{where}: default of {param.name!r} is not a {annotation}")
        params[param.name] = param
    return params


def _comments(source: str) -> dict[int, str]:
    """Trailing `# comment` text per line number (a '#' inside a string literal is not a comment)."""
    import io
    import tokenize

    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string[1:].strip() for t in tokens if t.type == tokenize.COMMENT}


def _is_type(value: Any, typ: type) -> bool:
    if typ is float:
        return type(value) in (int, float)
    return type(value) is typ


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def coerce(param: Param, raw: Any) -> Any:
    """A CLI string (or an already-typed value) as the parameter's type; UsageError when it is not one."""
    if isinstance(raw, str) and len(raw) > MAX_VALUE_CHARS:
        raise UsageError(f"parameter {param.name!r}: value of {len(raw)} characters (limit {MAX_VALUE_CHARS})")
    if not isinstance(raw, str) or param.type is str:
        value = raw
    elif param.type is bool:
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"parameter {param.name!r} expects a bool (true/false), got {_shown(raw)}")
        value = lowered in ("true", "1", "yes")
    else:
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise UsageError(f"parameter {param.name!r} expects a {param.type.__name__} literal, got "
                             f"{_shown(raw)}") from None
    if not _is_type(value, param.type):
        raise UsageError(f"parameter {param.name!r} expects a {param.type.__name__}, got {_shown(raw)}")
    return float(value) if param.type is float else value


def resolve(nb_path: str | Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated by the checked overrides (all parameters, in declaration order)."""
    declared = parse_parameters(load_notebook(nb_path), str(nb_path))
    unknown = [name for name in overrides if name not in declared]
    if unknown:
        valid = ", ".join(f"{p.name} ({p.type.__name__})" for p in declared.values())
        raise UsageError(f"{Path(nb_path).name}: unknown parameter {unknown[0]!r}; valid parameters: {valid}")
    values = {name: p.default for name, p in declared.items()}
    values.update({name: coerce(declared[name], raw) for name, raw in overrides.items()})
    return values
