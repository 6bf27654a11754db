"""Every notebook in notebooks/ follows the anatomy: one literal parameters cell, no outputs, no logic."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gpic_lab.params import load_notebook, parse_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _code(nb: dict) -> list[tuple[int, str, dict]]:
    return [(i, _source(c), c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def test_there_are_numbered_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"
    for nb in NOTEBOOKS:
        assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", nb.name), f"{nb.name}: name is not NN_snake_case.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path: Path) -> None:
    nb = load_notebook(path)
    params = parse_parameters(nb, str(path))  # exactly one parameters cell, literal annotated assignments
    assert nb["cells"][0]["cell_type"] == "markdown" and _source(nb["cells"][0]).startswith("# "), \
        f"{path.name}: first cell must be a markdown title"
    assert nb.get("metadata", {}).get("kernelspec", {}).get("name") == "gpic-lab", f"{path.name}: kernel"
    used: set[str] = set()
    for index, source, cell in _code(nb):
        where = f"{path.name} cell {index}"
        assert not cell.get("outputs"), f"{where}: stored outputs"
        assert cell.get("execution_count") is None, f"{where}: stored execution count"
        assert not re.search(r"^\s*%run\b", source, re.M), f"{where}: %run"
        tree = ast.parse(source)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda), \
                f"{where}: defines {type(node).__name__} (logic belongs in gpic_lab/)"
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
    unused = set(params) - used
    assert not unused, f"{path.name}: parameters never used: {sorted(unused)}"


def test_hygiene_check_catches_a_bad_notebook(tmp_path: Path) -> None:
    import nbformat

    from gpic_lab.errors import UsageError

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"),
                                         nbformat.v4.new_code_cell("n: int = len([1])", metadata={"tags": ["parameters"]})])
    bad = tmp_path / "00_bad.ipynb"
    nbformat.write(nb, bad)
    with pytest.raises(UsageError, match="non-literal"):
        parse_parameters(load_notebook(bad))
