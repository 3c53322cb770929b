"""The layers hold (import-linter's contracts in pyproject.toml), and each contract would
catch the import it forbids: a copy of the code with one such import added fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))

# contract id -> (file, an import it forbids): each added at the top of its file.
FORBIDDEN = {
    "server-is-below": ("server/db.py", "import dash_app"),
    "store-knows-no-jobs": ("server/lake/catalog.py", "import server.queue"),
    "server-layers": ("server/rules.py", "import server.stats"),
    "dashboard-uses-public-packages": ("dash_app/figures.py", "import server.lake.engine"),
    "middleware-stands-alone": ("middleware/api_analytics/records.py", "import server.db"),
}


def lint(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'middleware'}"}
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml"), "--no-cache", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_the_code(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for package in ("server", "dash_app", "worker", "middleware/api_analytics"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_code_keeps_every_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"{len(FORBIDDEN)} kept, 0 broken" in result.stdout


@pytest.mark.parametrize("contract", sorted(FORBIDDEN))
def test_each_contract_fails_on_the_import_it_forbids(tmp_path, contract):
    root = copy_of_the_code(tmp_path)
    path, statement = FORBIDDEN[contract]
    source = root / path
    text = source.read_text()
    # After the module's docstring and `from __future__`, where an import may stand.
    marker = "from __future__ import annotations\n"
    assert marker in text, path
    source.write_text(text.replace(marker, f"{marker}\n{statement}\n", 1))
    result = lint(root, "--contract", contract)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "BROKEN" in result.stdout
    clean = lint(copy_of_the_code(tmp_path / "clean"), "--contract", contract)
    assert clean.returncode == 0, clean.stdout[-3000:]


def dotted_functions_named_in_strings(path: Path) -> list[str]:
    """String literals of a module (docstrings aside) that name a function of ours by its
    dotted path: how jobs were named before the registry, invisible to any import graph."""
    import ast
    import importlib

    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        text = node.value
        if id(node) in docstrings or not text.startswith(("server.", "worker.", "dash_app.")):
            continue
        module, _, name = text.rpartition(".")
        try:
            target = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if callable(target) and not isinstance(target, type):
            found.append(f"{path.name}:{node.lineno}: {text!r}")
    return found


def test_no_job_is_named_by_a_dotted_string():
    """Jobs are referenced by function, declared once in server.jobs."""
    named = []
    for package in ("server", "worker", "dash_app"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                named += dotted_functions_named_in_strings(path)
    assert not named, named


def test_a_job_named_by_a_dotted_string_is_found(tmp_path):
    module = tmp_path / "asks.py"
    module.write_text(
        '"""A module that asks for the sweep by name."""\n\n'
        'def ask(queue):\n    queue.enqueue("maintenance", "server.ingest.sweep.sweep")\n'
    )
    assert dotted_functions_named_in_strings(module) == ["asks.py:4: 'server.ingest.sweep.sweep'"]
