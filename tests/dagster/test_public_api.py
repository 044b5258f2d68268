"""bizon_dagster uses Dagster's public API only: no private modules, no deprecated calls."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import dagster as dg

import bizon_dagster
from bizon_dagster import bizon_assets

PACKAGE = Path(bizon_dagster.__file__).parent
#: Context properties Dagster deprecated, and what replaces them.
DEPRECATED_CONTEXT = {"run_id": "context.run.run_id", "dagster_run": "context.run"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_imports_a_private_dagster_module():
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.startswith("dagster") and "._" in n]
    assert not found


def test_no_deprecated_context_property_is_read():
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in DEPRECATED_CONTEXT
                and isinstance(node.value, ast.Name)
                and node.value.id == "context"
            ):
                found.append(f"{path.name}:{node.lineno}: use {DEPRECATED_CONTEXT[node.attr]}")
    assert not found


def test_definitions_and_a_materialization_raise_no_warning_from_the_package(
    make_pipeline, instance
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assets = bizon_assets(make_pipeline())
        assert dg.materialize([assets], instance=instance).success
    ours = [w for w in caught if Path(w.filename).is_relative_to(PACKAGE)]
    assert not ours, [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
