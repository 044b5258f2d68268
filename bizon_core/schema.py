"""The JSON Schema of a pipeline YAML, generated from the models, for editors.

The top level is `PipelineConfig`'s; `source:` and `destination.config` take the schema
of the connector named by `name` (an `if`/`then` per connector, which yaml-language-server
and other draft 2020-12 validators follow). Each connector's models are kept under
`$defs` prefixed with the connector's kind and name, so two connectors may both have a
model called `Config`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bizon_core.config import PipelineConfig
from bizon_core.discovery import (
    ConnectorKind,
    builtin_connectors_dir,
    discover,
    load_connector_class,
)

SCHEMA_ID = "https://bizon.dev/schema/pipeline.schema.json"


def pipeline_schema(builtin_only: bool = False) -> dict[str, Any]:
    """The schema of a pipeline YAML for the connectors found (built-in and on the path,
    or only the built-in ones)."""
    dirs = [builtin_connectors_dir()] if builtin_only else None
    schema = PipelineConfig.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})
    sources, destinations = [], []
    for name, info in discover(ConnectorKind.SOURCE, dirs).items():
        config_class = load_connector_class(info).get_config_class()
        sources.append((name, _connector_schema(config_class, f"source_{name}_", defs)))
    for name, info in discover(ConnectorKind.DESTINATION, dirs).items():
        config_class = load_connector_class(info).get_config_class()
        destinations.append((name, _connector_schema(config_class, f"destination_{name}_", defs)))
    schema["properties"]["source"] = _by_name(
        [(name, _as_source_section(part)) for name, part in sources], "the source connector"
    )
    schema["properties"]["destination"] = _by_name(
        [(name, _as_destination_section(part)) for name, part in destinations],
        "the destination connector",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text(builtin_only: bool = False) -> str:
    """`pipeline_schema()` as the committed file holds it."""
    return json.dumps(pipeline_schema(builtin_only), indent=2) + "\n"


def committed_schema_path() -> Path:
    """`schema/pipeline.schema.json` of a checkout (the built-in connectors' schema)."""
    return builtin_connectors_dir().parent / "schema" / "pipeline.schema.json"


def _connector_schema(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict:
    schema = model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, definition in schema.pop("$defs", {}).items():
        defs[f"{prefix}{name}"] = definition
    return schema


def _as_source_section(schema: dict[str, Any]) -> dict[str, Any]:
    """A source's config as a `source:` section: `stream` or a list of `streams`."""
    properties = dict(schema.get("properties", {}))
    properties["streams"] = {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "description": "Several streams of the source, instead of `stream`.",
    }
    required = [field for field in schema.get("required", []) if field != "stream"]
    return {
        **schema,
        "properties": properties,
        "required": required,
        "oneOf": [{"required": ["stream"]}, {"required": ["streams"]}],
    }


def _as_destination_section(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"type": "string"}, "config": schema},
        "required": ["name"],
        "additionalProperties": False,
    }


def _by_name(parts: list[tuple[str, dict[str, Any]]], what: str) -> dict[str, Any]:
    """An object whose `name` picks which of `parts` validates it."""
    return {
        "type": "object",
        "properties": {
            "name": {"enum": [name for name, _ in parts], "description": f"Name of {what}."}
        },
        "required": ["name"],
        "allOf": [
            {"if": {"properties": {"name": {"const": name}}}, "then": part} for name, part in parts
        ],
    }
