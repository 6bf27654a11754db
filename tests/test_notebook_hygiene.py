"""Every notebook in notebooks/ follows the anatomy: one literal parameters cell, no outputs, no logic."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gpic_lab.errors import UsageError
from gpic_lab.runs.params import load_notebook, parse_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def hygiene_problems(path: Path) -> list[str]:
    """Everything wrong with a notebook's anatomy (empty when it is clean)."""
    nb = load_notebook(path)
    try:
        params = parse_parameters(nb, str(path))  # exactly one parameters cell, literal annotated assignments
    except UsageError as exc:
        return [str(exc)]
    problems = []
    if nb["cells"][0]["cell_type"] != "markdown" or not _source(nb["cells"][0]).startswith("# "):
        problems.append("first cell must be a markdown title")
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "gpic-lab":
        problems.append("kernelspec is not gpic-lab")
    used: set[str] = set()
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        where, source = f"cell {index}", _source(cell)
        if cell.get("outputs") or cell.get("execution_count") is not None:
            problems.append(f"{where}: stored outputs or execution count")
        if re.search(r"^\s*%run\b", source, re.M):
            problems.append(f"{where}: %run")
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            problems.append(f"{where}: not plain Python ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                problems.append(f"{where}: defines {type(node).__name__} (logic belongs in gpic_lab/)")
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
    if set(params) - used:
        problems.append(f"parameters never used: {sorted(set(params) - used)}")
    return problems


def test_there_are_numbered_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"
    for nb in NOTEBOOKS:
        assert re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", nb.name), f"{nb.name}: name is not NN_snake_case.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path: Path) -> None:
    assert hygiene_problems(path) == [], path.name


PARAMS = "n: int = 3  # a count"


@pytest.mark.parametrize(("cells", "expected"), [
    ([("code", "n: int = len([1])", True)], "non-literal"),
    ([("code", PARAMS, True), ("code", "m: int = 1", True)], "exactly one cell tagged"),
    ([("code", PARAMS, True), ("code", "def f():\n    return n", False)], "defines FunctionDef"),
    ([("code", PARAMS, True), ("code", "g = lambda: n", False)], "defines Lambda"),
    ([("code", PARAMS, True), ("code", "%run other.ipynb\nprint(n)", False)], "%run"),
    ([("code", PARAMS, True), ("code", "print(1)", False)], "parameters never used: ['n']"),
    ([("code", PARAMS, True), ("out", "print(n)", False)], "stored outputs"),
])
def test_hygiene_check_catches_bad_notebooks(tmp_path: Path, cells: list, expected: str) -> None:
    import nbformat

    built = [nbformat.v4.new_markdown_cell("# bad")]
    for kind, src, params in cells:
        cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["parameters"]} if params else {})
        if kind == "out":
            cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
            cell.execution_count = 1
        built.append(cell)
    nb = nbformat.v4.new_notebook(cells=built, metadata={"kernelspec": {"name": "gpic-lab", "display_name": "x"}})
    bad = tmp_path / "00_bad.ipynb"
    nbformat.write(nb, bad)
    problems = hygiene_problems(bad)
    assert any(expected in p for p in problems), problems


def _cells(nb: dict) -> list[tuple[str, str]]:
    return [(c["cell_type"], _source(c).strip()) for c in nb["cells"]]


def test_every_notebook_is_a_jupytext_pair() -> None:
    sources = sorted(NOTEBOOKS[0].parent.glob("[0-9][0-9]_*.py"))
    assert [p.stem for p in sources] == [p.stem for p in NOTEBOOKS], "every NN_name.ipynb needs its NN_name.py"
    for nb in NOTEBOOKS:
        assert load_notebook(nb).get("metadata", {}).get("jupytext", {}).get("formats") == "ipynb,py:percent", nb.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(path: Path) -> None:
    import jupytext

    text = jupytext.read(path.with_suffix(".py"))
    assert _cells(text) == _cells(load_notebook(path)), (
        f"{path.name} and {path.with_suffix('.py').name} differ: edit the .py, then `jupytext --sync {path}`")


def test_editing_the_ipynb_then_sync_updates_the_py(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import nbformat

    src = NOTEBOOKS[0]
    for suffix in (".ipynb", ".py"):
        (tmp_path / src.with_suffix(suffix).name).write_bytes(src.with_suffix(suffix).read_bytes())
    ipynb, py = tmp_path / src.name, tmp_path / src.with_suffix(".py").name
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("An edit made in JupyterLab."))
    nbformat.write(nb, ipynb)
    later = py.stat().st_mtime + 5
    os.utime(ipynb, (later, later))
    jupytext = Path(sys.executable).with_name("jupytext")
    subprocess.run([str(jupytext), "--sync", str(ipynb)], check=True, capture_output=True)
    assert "# An edit made in JupyterLab." in py.read_text()
    assert _cells(nbformat.read(ipynb, as_version=4))[-1] == ("markdown", "An edit made in JupyterLab.")
