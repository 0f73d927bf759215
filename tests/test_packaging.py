"""Tooling a contributor expects (issue 21.8): the package metadata in pyproject.toml takes its dependencies
from requirements.txt (one list), every third-party module sprout_core imports is declared there, and CI
runs ruff."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: requirement files whose packages count as declared (the llama.cpp build is an optional extra)
DECLARED_IN = ("requirements.txt", "requirements-llama.txt")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(files=DECLARED_IN) -> set[str]:
    out = set()
    for f in files:
        for line in (ROOT / f).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            out.add(_norm(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0]))
    return out


def third_party_imports() -> set[str]:
    tops = set()
    for p in (ROOT / "sprout_core").rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(n, ast.Import):
                tops.update(a.name.split(".")[0] for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                tops.add(n.module.split(".")[0])
    return tops - set(sys.stdlib_module_names) - {"sprout_core", "__future__"}


def test_every_import_is_declared():
    dist_of = md.packages_distributions()
    have = declared()
    missing = []
    for mod in sorted(third_party_imports()):
        dists = dist_of.get(mod)
        if not dists:
            missing.append(f"{mod} (not installed here)")
        elif not any(_norm(d) in have for d in dists):
            missing.append(f"{mod} (from {', '.join(dists)})")
    assert not missing, f"imported by sprout_core but not in {' or '.join(DECLARED_IN)}: {missing}"
    assert "scipy" in have   # tasks/lp imports scipy.optimize


def test_pyproject_dependencies_are_requirements_txt():
    pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import read_configuration

    cfg = read_configuration(ROOT / "pyproject.toml")
    proj = cfg["project"]
    assert proj["name"] == "sprout" and proj["version"] and proj["requires-python"]
    assert {_norm(re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0]) for d in proj["dependencies"]} == declared(
        ("requirements.txt",))
    assert cfg["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert proj["scripts"]["sprout"] == "sprout_core.cli:main"


def test_ci_runs_ruff_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci
    test_sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert test_sh.index("ruff check") < test_sh.index("pytest")
    assert "[tool.ruff.lint]" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_the_declared_reader_sees_a_missing_package(tmp_path, monkeypatch):
    (tmp_path / "requirements.txt").write_text("# a comment\nnumpy>=1.26\nuvloop>=0.19; sys_platform != 'win32'\n"
                                               "Foo_Bar[extra]==1\n-r other.txt\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert declared(("requirements.txt",)) == {"numpy", "uvloop", "foo-bar"}
