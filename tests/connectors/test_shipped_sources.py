"""The sources that ship: listed with their streams, examples that `bizon check` accepts,
small enough to read, and the README's table of them true to their code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bizon_core.discovery import ConnectorKind, discover
from bizon_core.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "pokeapi": ["pokemon", "berry", "item"],
    "gbif": ["occurrence"],
    "github": ["issues", "pull_requests", "commits"],
    "stripe": ["customers", "charges", "invoices"],
    "hubspot": ["contacts", "companies", "deals"],
    "notion": ["pages", "databases", "users"],
}
MAX_LINES = 120


def source_lines(name: str) -> int:
    return len(
        (ROOT / "connectors" / "sources" / name / "src" / "source.py").read_text().splitlines()
    )


def examples(name: str) -> list[Path]:
    return sorted((ROOT / "connectors" / "sources" / name / "config").glob("*.example.yml"))


def test_source_list_shows_each_with_its_streams(cli):
    code, out, _ = cli("source", "list")
    assert code == 0
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    for name, streams in SHIPPED.items():
        assert rows[name] == ",".join(streams)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_examples_pass_bizon_check_but_for_the_connection(cli, name, monkeypatch):
    assert examples(name), f"{name} has no config/*.example.yml"
    for example in examples(name):
        for variable in re.findall(r"env://(\w+)", example.read_text()):
            monkeypatch.setenv(variable, f"example-{variable.lower()}-value")
        code, out, err = cli("check", "--config-only", example)
        assert code == 0, err
        assert f"config OK ({name} -> " in out
        assert read_yaml(example)["source"]["name"] == name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_is_short_and_has_a_readme_and_a_contract_test(name):
    folder = ROOT / "connectors" / "sources" / name
    assert source_lines(name) <= MAX_LINES
    readme = (folder / "README.md").read_text()
    for heading in ("**Streams**", "**Pagination**", "**Auth**", "**Incremental**", "**API docs**"):
        assert heading in readme, f"{name}/README.md says nothing under {heading}"
    assert "SourceContract" in (folder / "tests" / f"test_{name}_contract.py").read_text()


def test_the_readme_table_names_every_source_with_its_true_line_count():
    readme = (ROOT / "README.md").read_text()
    rows = dict(
        re.findall(r"^\| \[`(\w+)`\]\(connectors/sources/\w+\) \|.*\| (\d+) \|$", readme, re.M)
    )
    assert set(rows) == set(discover(ConnectorKind.SOURCE, [ROOT / "connectors"]))
    for name, lines in rows.items():
        assert int(lines) == source_lines(name), f"README says {name} has {lines} lines"
