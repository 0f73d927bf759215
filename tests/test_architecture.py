"""The code shows its layers (issue 21.5): no import cycle in ``sprout_core``, and Streamlit stays on top.

A small AST check, no import-linter: every ``import`` / ``from … import`` statement of every module under
``sprout_core/`` is read, wherever it stands. **Function-local imports and imports under ``if
TYPE_CHECKING:`` count**: a function-local import is a run-time dependency that is only deferred (it is how
a loop hides), and a type-only import is a design dependency (the type belongs to the module it comes
from). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg`` (its
``__init__``). Importing ``pkg.sub`` also runs ``pkg/__init__``; that implicit step is not an edge (it is
how packages work), which is why a package's ``__init__`` stays a face that only imports its own parts.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "sprout_core"
#: the only modules of sprout_core that may import streamlit
STREAMLIT_ALLOWED = {"sprout_core.ui", "sprout_core.serve"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """``(sprout_core modules imported, top-level names of every module imported)`` by the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name if is_pkg else name.rpartition(".")[0]
    inner: set[str] = set()
    tops: set[str] = set()

    def resolve(mod: str) -> str | None:
        while mod and mod not in modules:
            mod = mod.rpartition(".")[0]
        return mod or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                tops.add(a.name.split(".")[0])
                if a.name.startswith("sprout_core"):
                    target = resolve(a.name)
                    if target:
                        inner.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            tops.add(mod.split(".")[0])
            if not mod.startswith("sprout_core"):
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                target = sub if sub in modules else resolve(mod)
                if target:
                    inner.add(target)
    inner.discard(name)
    return inner, tops


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(edges, top-level imports)`` per module of sprout_core."""
    modules = _modules()
    edges, tops = {}, {}
    for name, path in modules.items():
        edges[name], tops[name] = _imports(path, name, modules)
    return edges, tops


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def _describe(comp: list[str], edges: dict[str, set[str]]) -> str:
    inside = set(comp)
    ties = [f"{a} -> {b}" for a in comp for b in sorted(edges[a] & inside)]
    return " | ".join(ties)


def test_no_import_cycle_in_sprout_core():
    edges, _ = import_graph()
    assert len(edges) > 50   # the walk found the package (a typo in PKG would pass vacuously)
    found = cycles(edges)
    assert not found, "import cycles (every import counts, function-local and TYPE_CHECKING too):\n" + "\n".join(
        _describe(c, edges) for c in found)


def test_streamlit_only_in_ui_and_serve():
    edges, tops = import_graph()
    bad = sorted(m for m, t in tops.items() if "streamlit" in t and m not in STREAMLIT_ALLOWED)
    assert not bad, f"streamlit imported outside {sorted(STREAMLIT_ALLOWED)}: {bad}"
    # the views never reach streamlit through another module either
    views = [m for m in edges if m.startswith("sprout_core.views")]
    assert views
    for v in views:
        seen, todo = set(), [v]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo.extend(edges.get(m, ()))
        assert not seen & STREAMLIT_ALLOWED, f"{v} reaches {sorted(seen & STREAMLIT_ALLOWED)} (streamlit)"
        assert "streamlit" not in set().union(*(tops[m] for m in seen)), v


@pytest.mark.parametrize("case, expect", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]]),
])
def test_the_cycle_finder_finds_cycles(case, expect):
    assert sorted(cycles(case)) == expect


def test_the_walk_sees_function_local_and_type_checking_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "sprout_core"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from sprout_core import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sprout_core.a import f\n")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("from ..a import f\nimport streamlit as st\n")
    me = sys.modules[__name__]
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "PKG", pkg)
    edges, tops = import_graph()
    assert edges["sprout_core.a"] == {"sprout_core.b"} and edges["sprout_core.b"] == {"sprout_core.a"}
    assert edges["sprout_core.sub"] == {"sprout_core.sub.c"} and edges["sprout_core.sub.c"] == {"sprout_core.a"}
    assert cycles(edges) == [["sprout_core.a", "sprout_core.b"]]
    assert "streamlit" in tops["sprout_core.sub.c"]


def test_contributing_formula_map_names_real_functions():
    """docs/CONTRIBUTING.md's 'Where each formula lives' table names functions that exist (so the map cannot rot)."""
    import importlib
    import re

    doc = (ROOT / "docs" / "CONTRIBUTING.md").read_text(encoding="utf-8")
    table = doc[doc.index("### Where each formula lives"):doc.index("### How to add")]
    names = set(re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", table))
    assert len(names) >= 15
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):   # the longest module prefix, then attributes
            try:
                obj = importlib.import_module("sprout_core." + ".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing, f"CONTRIBUTING.md names what does not exist: {missing}"
