"""The layout the README's architecture section describes, checked on the source: floors, no import cycles.

    python -m pytest tests/test_architecture.py

Every `import` counts, the ones inside functions too: a lazy import hides a cycle from the interpreter, not
from the reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "training", "datagen", "vendors", "workers", "db")
# A package may import its own floor and any floor below it, never one above.
FLOOR = {"app": 4, "training": 3, "datagen": 2, "vendors": 1, "workers": 1, "db": 0}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (resolved to modules that exist, not to names inside them)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if (ROOT / pkg).is_dir()}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` imports the module pkg.mod; `from pkg.mod import name` imports pkg.mod
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files and t.split(".")[0] in PACKAGES:
                    t = t.rpartition(".")[0]
                if t in files and t != name:
                    found.add(t)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_imports_between_modules_form_no_cycle():
    assert cycles(project_imports()) == []


def test_each_package_imports_only_its_own_floor_and_the_floors_below():
    upward = sorted(f"{mod} -> {dep}" for mod, deps in project_imports().items() for dep in deps
                    if FLOOR[dep.split(".")[0]] > FLOOR[mod.split(".")[0]]
                    or (FLOOR[dep.split(".")[0]] == FLOOR[mod.split(".")[0]] and dep.split(".")[0] != mod.split(".")[0]))
    assert upward == []


def test_db_holds_database_code_only():
    offenders = []
    for path in (ROOT / "db").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("subprocess", "signal")]
    assert offenders == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    # The checks above would pass on an empty graph; this one shows they can fail.
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": set()}) == [["a.x", "a.y"]]
    assert "app.cli" in project_imports() and project_imports()["app.cli"]


def test_every_package_is_shipped():
    # A package missing from pyproject's list imports from a checkout but not from `moodshelf` installed.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert [p for p in PACKAGES if f'"{p}*"' not in text] == []
