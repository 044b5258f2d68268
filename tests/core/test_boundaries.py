"""Package boundaries: the core never imports Dagster, connectors never import bizon_dagster."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONNECTOR_ROOTS = [REPO / "connectors", REPO / "tests" / "fixtures" / "connectors"]

IMPORT_EVERYTHING = textwrap.dedent(
    """
    import importlib
    import json
    import pkgutil
    import sys

    import bizon_core
    import bizon_core.cli
    from bizon_core.discovery import ConnectorKind, discover, load_connector_class

    # __main__ modules are entry points: importing one runs it.
    modules = [
        info.name
        for info in pkgutil.walk_packages(bizon_core.__path__, "bizon_core.")
        if not info.name.endswith(".__main__")
    ]
    for name in modules:
        importlib.import_module(name)
    connectors = []
    for kind in ConnectorKind:
        for info in discover(kind).values():
            load_connector_class(info)
            connectors.append(f"{kind.value}:{info.name}")
    print(json.dumps({
        "modules": modules,
        "connectors": connectors,
        "dagster": sorted(
            m for m in sys.modules if m.split(".")[0] in ("dagster", "bizon_dagster")
        ),
    }))
    """
)


def test_importing_bizon_core_does_not_import_dagster(tmp_path: Path):
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    # The walk really covered the package and the built-in connectors.
    assert {"bizon_core.cli", "bizon_core.config", "bizon_core.sync.runner"} <= set(
        report["modules"]
    )
    assert {"source:dummy", "destination:file", "destination:logger"} <= set(report["connectors"])
    assert report["dagster"] == []


def dagster_imports(source: str, filename: str = "<test>") -> list[str]:
    """The `bizon_dagster` imports of a Python file, as `line: module`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value]
        found.extend(f"{node.lineno}: {m}" for m in modules if m.split(".")[0] == "bizon_dagster")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import bizon_dagster",
        "import os, bizon_dagster.assets as a",
        "from bizon_dagster import factory",
        "from bizon_dagster.assets import x",
        "def f():\n    import bizon_dagster",
        "import importlib\nimportlib.import_module('bizon_dagster.assets')",
        "__import__('bizon_dagster')",
    ],
)
def test_the_checker_finds_bizon_dagster_imports(snippet: str):
    assert dagster_imports(snippet)


@pytest.mark.parametrize(
    "snippet",
    ["import dagster_pipes", "from .bizon_dagster import x", "x = 'bizon_dagster'"],
)
def test_the_checker_ignores_other_imports(snippet: str):
    assert dagster_imports(snippet) == []


def test_no_connector_imports_bizon_dagster():
    files = sorted(f for root in CONNECTOR_ROOTS for f in root.rglob("*.py"))
    assert any(f.match("connectors/sources/dummy/src/source.py") for f in files)
    assert any(f.match("connectors/destinations/file/src/destination.py") for f in files)

    offenders = {
        str(f.relative_to(REPO)): hits
        for f in files
        if (hits := dagster_imports(f.read_text(encoding="utf-8"), str(f)))
    }
    assert offenders == {}
