"""Shared helpers of the notebook builders (`notebooks/build_*.py`): cells without outputs, one kernelspec.

Run a builder from the project root, e.g. `.venv/bin/python notebooks/build_01_explore_shards.py`; it rewrites
its notebook(s) in `notebooks/`. Builders keep notebooks reviewable as code and free of stored outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "gpic-lab", "display_name": "Python (gpic_lab)", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell (surrounding blank lines stripped)."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, params: bool = False) -> nbformat.NotebookNode:
    """A code cell; params=True tags it as papermill's `parameters` cell."""
    return nbformat.v4.new_code_cell(text.strip("\n"), metadata={"tags": ["parameters"]} if params else {})


def notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A notebook with the project kernel, no outputs and stable cell ids (rebuilding gives no spurious diff)."""
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:03d}"
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})


def write(name: str, cells: list[nbformat.NotebookNode]) -> Path:
    """Write notebooks/<name> and return its path."""
    path = HERE / name
    nbformat.write(notebook(cells), path)
    return path
