"""The layering of docs/architecture.md, enforced: import-linter contracts (pyproject.toml),
no import cycles inside handtools, and vertex counts only in the hand package."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "handtools"
LINT = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed (dev extra)")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    res = _lint(ROOT, ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_contract_fails_when_core_imports_h5py(tmp_path):
    """The contract can fail: a copy of the package whose core imports h5py is refused."""
    shutil.copytree(PACKAGE, tmp_path / "handtools", ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "handtools" / "core" / "geometry" / "cameras.py"
    target.write_text(target.read_text() + "\nimport h5py  # noqa\n")
    res = _lint(tmp_path, tmp_path)
    assert res.returncode != 0
    assert "handtools.core.geometry.cameras -> h5py" in res.stdout


def _module_imports() -> dict[str, set[str]]:
    """handtools module -> handtools modules it imports (any scope), from the source."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("handtools")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("handtools"):
                deps.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.level:  # relative import
                base = name.split(".") if rel.name == "__init__" else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                deps.add(".".join(base + ([node.module] if node.module else [])))
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    """No two handtools modules import each other, directly or through others (package
    ``__init__`` re-exports are left out: importing a package runs its ``__init__``)."""
    graph = {m: {d for d in deps if not _is_package(d)} for m, deps in _module_imports().items() if not _is_package(m)}
    assert _cycles(graph) == []


def test_cycle_finder_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def test_vertex_count_is_named_only_in_the_hand_package():
    """No literal 778 (MANO's vertex count) in code outside handtools/core/hand: use NUM_VERTICES."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "core" / "hand") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == 778 and type(node.value) is int:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
