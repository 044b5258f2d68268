"""The contract suite fails each deliberately broken connector on the rule it breaks, names
the rule and the fix, and passes a connector that keeps them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bizon_core.discovery import builtin_connectors_dir
from bizon_core.testing import FakeApi, FakeApiServer, make_records
from bizon_core.testing.contract import (
    ContractSubject,
    ContractViolation,
    check_connection,
    check_example_configs,
    check_ids,
    check_incremental,
    check_json,
    check_pagination_ends,
    check_streams,
    check_survives_faults,
)

CONNECTORS = Path(__file__).parent / "connectors"
ALL_RULES = (
    check_connection,
    check_pagination_ends,
    check_ids,
    check_json,
    check_incremental,
    check_survives_faults,
)


@pytest.fixture(autouse=True)
def contract_connectors(monkeypatch):
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(CONNECTORS))


@pytest.fixture
def api_url():
    api = FakeApi({"users": make_records(40)})
    with FakeApiServer(api) as server:
        yield server.url


def subject(name: str, url: str, **config) -> ContractSubject:
    return ContractSubject(name, {"base_url": url, **config}, cursor_field="updated_at")


def test_a_connector_keeping_every_rule_passes_them_all(api_url):
    good = subject("good", api_url)
    check_streams(good)
    check_example_configs(good)
    for rule in ALL_RULES:
        rule(good, "users")


@pytest.mark.parametrize(
    ("connector", "check", "rule", "fix"),
    [
        ("never_ends", check_pagination_ends, "pagination-ends", "return next_pagination={}"),
        ("loops", check_pagination_ends, "pagination-ends", "a new pagination for each page"),
        ("duplicate_ids", check_ids, "ids", "a field unique within the stream"),
        ("keeps_nothing", check_incremental, "incremental-keeps-changes", "page to the end"),
        ("returns_old", check_incremental, "incremental-only-newer", "records_after()"),
        ("not_json", check_json, "json", "into strings or numbers"),
        ("bad_check", check_connection, "check-connection", "return (True, None)"),
        ("no_retry", check_survives_faults, "survives-faults", "through self.session"),
    ],
)
def test_a_broken_connector_fails_the_rule_it_breaks(api_url, connector, check, rule, fix):
    broken = subject(connector, api_url)
    broken.max_pages = 20
    with pytest.raises(ContractViolation) as failure:
        check(broken, "users")
    assert failure.value.rule == rule
    message = str(failure.value)
    assert message.startswith(f"rule '{rule}': stream 'users': ") and fix in message, message


@pytest.mark.parametrize(
    ("connector", "check", "fragment"),
    [
        ("no_streams", check_streams, "rule 'streams': streams() is empty"),
        (
            "bad_example",
            check_example_configs,
            "rule 'example-configs': stream 'users': bad_example.example.yml does not "
            "validate: source.page_sise: unknown field (did you mean 'page_size'?)",
        ),
    ],
)
def test_a_connector_level_rule_names_itself(api_url, connector, check, fragment):
    with pytest.raises(ContractViolation) as failure:
        check(subject(connector, api_url))
    assert str(failure.value).startswith(fragment), failure.value


def test_every_builtin_source_runs_the_contract_suite():
    sources = sorted(p for p in (builtin_connectors_dir() / "sources").iterdir() if p.is_dir())
    assert sources
    for source in sources:
        suites = [
            node
            for test_file in (source / "tests").glob("test_*.py")
            for node in ast.walk(ast.parse(test_file.read_text()))
            if isinstance(node, ast.ClassDef)
            and any(getattr(base, "id", None) == "SourceContract" for base in node.bases)
        ]
        assert suites, f"{source.name}: no tests/test_*.py class extends SourceContract"
