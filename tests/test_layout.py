"""The code's shape: imports go one way, no cycle is hidden in a function, ruff is content."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A package may load one of its own vendor plug-ins lazily (search/ picks its backend by vendor).
LAZY_PLUGINS = {
    ("indexing/search/__init__.py", "indexing.search.postgres"),
    ("indexing/search/__init__.py", "indexing.search.sqlite"),
}


def _project_imports_inside_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = str(path.relative_to(root))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [f"{package}.{base}".rstrip(".") if node.level else base]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("indexing", "project") and (relative, name) not in LAZY_PLUGINS:
                    found.append(f"{relative}:{node.lineno} imports {name} inside {function.name}()")
    return found


def test_no_project_module_is_imported_inside_a_function():
    sources = [
        p
        for folder in ("indexing", "project")
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts
    ]
    found = [line for path in sorted(sources) for line in _project_imports_inside_functions(path)]
    assert found == []


def test_the_checker_sees_an_import_hidden_in_a_function(tmp_path):
    module = tmp_path / "indexing" / "late.py"
    module.parent.mkdir()
    module.write_text(
        "def late():\n    from . import pipeline\n    import project.settings\n    return pipeline\n"
    )
    assert _project_imports_inside_functions(module, tmp_path) == [
        "indexing/late.py:2 imports indexing inside late()",
        "indexing/late.py:3 imports project.settings inside late()",
    ]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    executable = BIN / tool
    if not executable.exists():
        executable = Path(shutil.which(tool) or tool)
    return subprocess.run([str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("command", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff_finds_nothing(command):
    result = _run("ruff", *command)
    assert result.returncode == 0, result.stdout + result.stderr
