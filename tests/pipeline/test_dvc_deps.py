"""Each stage's deps in dvc.yaml name every project file whose code the stage runs.

The stage script's imports are followed statically (``ast``, function-level imports
included) through ``src/neurovision``: every module reached, and the ``__init__.py`` of
every package on the way, must be among the stage's deps, so that editing any of them makes
``dvc status`` report the stage as changed.  Deps that no import reaches are reported too,
so that a module dropped from a stage's imports stops rerunning it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _module_file(name: str) -> Path | None:
    """The file of module ``name`` under src/ or stages/, or None (not a project module)."""
    parts = name.split(".")
    for base in (SRC, ROOT / "stages"):
        path = base.joinpath(*parts)
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        if (path / "__init__.py").is_file():
            return path / "__init__.py"
    return None


def _imported(path: Path) -> set[str]:
    """Module names ``path`` imports, anywhere in the file (``from a import b`` gives
    ``a`` and, where it is a module, ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def code_deps(script: Path) -> set[str]:
    """Project files (relative to the root) that running ``script`` imports, transitively."""
    seen: set[Path] = {script}
    todo = [script]
    while todo:
        for name in _imported(todo.pop()):
            parts = name.split(".")
            # a module, and the __init__.py of every package it sits in
            for i in range(1, len(parts) + 1):
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return {str(p.relative_to(ROOT)) for p in seen}


def _stage_deps() -> list[tuple[str, Path, set[str]]]:
    out = []
    for name, spec in STAGES.items():
        body = spec.get("do", spec)
        script = re.search(r"python\s+(stages/\w+\.py)", body["cmd"]).group(1)
        deps = {d for d in body.get("deps", []) if d.endswith(".py")}
        out.append((name, ROOT / script, deps))
    return out


@pytest.mark.parametrize("name, script, deps", _stage_deps(), ids=[s[0] for s in _stage_deps()])
def test_stage_deps_list_exactly_the_code_it_imports(name, script, deps):
    needed = code_deps(script)
    missing = sorted(needed - deps)
    assert not missing, f"{name}: code it runs but does not depend on: {missing}"
    assert not deps - needed, f"{name}: code deps it never imports: {sorted(deps - needed)}"


def test_the_import_walk_follows_function_level_and_package_imports(tmp_path):
    deps = code_deps(ROOT / "stages" / "download.py")
    # download -> neurovision.erp (check_subject) -> neurovision.release; the demo's
    # forward model -> neurovision.channels; every stage -> stages/_workspace.py
    for module in ("src/neurovision/__init__.py", "src/neurovision/erp.py",
                   "src/neurovision/release.py", "src/neurovision/channels.py",
                   "stages/_workspace.py"):
        assert module in deps
    assert not any(d.startswith("src/neurovision/app/") for d in deps)
    assert "src/neurovision/retrieval.py" in code_deps(ROOT / "stages" / "download.py")
