"""The package layout: one subpackage per stage, arrows one way (import-linter), small modules."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gpic_lab"
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
CORE_MODULES = {"__init__", "errors", "paths", "fsio", "plots", "progress"}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--config", str(root / ".importlinter")], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_import_contracts_hold() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("shards/schema.py", "from gpic_lab.dedup import knn", "Layers"),  # a stage arrow pointing down the layers
    ("dedup/knn.py", "from gpic_lab.dedup import rule", "No import cycles"),  # rule imports knn: a cycle
])
def test_lint_imports_fails_on_an_upward_import_or_a_cycle(tmp_path: Path, module: str, line: str,
                                                           contract: str) -> None:
    shutil.copytree(PKG, tmp_path / "gpic_lab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / "gpic_lab" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-2000:]
    broken = proc.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, proc.stdout[-2000:]


def test_only_the_shared_core_sits_at_the_top() -> None:
    top = {p.stem for p in PKG.glob("*.py")}
    assert top <= CORE_MODULES, f"move {sorted(top - CORE_MODULES)} into the stage package they belong to"
    for pkg in sorted(p for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")):
        if not any(pkg.glob("*.py")):
            continue  # data folders (prompts, word lists) live inside their stage package
        init = pkg / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{pkg.name}: docstring missing"


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    big = {k: v for k, v in sizes.items() if v > 420}
    assert not big, f"split these modules (about 400 lines at most): {big}"
