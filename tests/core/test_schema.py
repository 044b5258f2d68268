"""The pipeline JSON Schema: generated from the models, committed up to date, referenced by
every example config, which it validates; a wrong key is rejected."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from bizon_core.schema import committed_schema_path, schema_text
from bizon_core.yamlfile import read_yaml

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "schema" / "pipeline.schema.json"
EXAMPLES = sorted((REPO / "connectors").glob("*/*/config/*.example.yml"))


@pytest.fixture
def validator():
    return jsonschema.Draft202012Validator(json.loads(schema_text(builtin_only=True)))


def test_the_committed_schema_is_up_to_date():
    assert committed_schema_path() == COMMITTED
    assert COMMITTED.read_text() == schema_text(builtin_only=True), (
        "schema/pipeline.schema.json is stale: run "
        "`bizon schema --builtin-only -o schema/pipeline.schema.json`"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_names_the_schema_and_validates(validator, example):
    first = example.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../../../../schema/pipeline.schema.json"
    assert (example.parent / first.partition("$schema=")[2]).resolve() == COMMITTED
    # As an editor reads YAML (1.2): an unquoted date is a string, not a date object.
    document = json.loads(json.dumps(read_yaml(example), default=str))
    errors = list(validator.iter_errors(document))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (("source",), "sync_mod"),
        (("source", "authentication", "params"), "tokn"),
        (("destination", "config"), "paht"),
        (("source", "endpoints", "users"), "records_pth"),
    ],
)
def test_a_wrong_key_is_rejected(validator, path, key):
    example = next(p for p in EXAMPLES if p.name == "rest_api.example.yml")
    config = read_yaml(example)
    target = config
    for part in path:
        target = target[part]
    target[key] = "x"
    errors = list(validator.iter_errors(config))
    assert errors and any(key in str(e.message) for e in _leaves(errors)), errors


def test_a_source_of_the_connectors_path_is_in_the_schema(monkeypatch):
    schema = json.loads(schema_text())  # the suite's fixture connectors are on the path
    names = schema["properties"]["source"]["properties"]["name"]["enum"]
    assert {"dummy", "rest_api", "myapi", "myapi_rest"} <= set(names)


def _leaves(errors):
    for error in errors:
        yield error
        yield from _leaves(error.context or [])
