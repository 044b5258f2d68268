"""What the Dagster catalog knows of a stream before any run: table, columns, owners,
tags, group, automation condition and the pipeline YAML as the asset's code."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from bizon_core.config import load_pipeline
from bizon_core.errors import ConfigError
from bizon_dagster import bizon_assets, build_definitions

EXAMPLE = Path(__file__).parents[2] / "connectors/sources/dummy/config/dummy.example.yml"
CREATURES = dg.AssetKey(["dummy", "creatures"])


def dummy_pipeline(tmp_path: Path, name: str = "dummy_catalog", **top) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config.update(name=name, **top)
    config["destination"]["config"]["path"] = str(tmp_path / f"{name}.duckdb")
    path = tmp_path / "pipelines" / f"{name}.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def spec_of(path: Path, key: dg.AssetKey = CREATURES) -> dg.AssetSpec:
    return next(s for s in bizon_assets(path).specs if s.key == key)


def test_the_table_is_known_before_the_first_run_and_its_columns_after(tmp_path, instance):
    path = dummy_pipeline(tmp_path)
    before = spec_of(path)
    assert before.metadata["dagster/table_name"] == "dummy_catalog.main.creatures"
    assert "dagster/column_schema" not in before.metadata  # no table yet
    assert dg.materialize([bizon_assets(path)], instance=instance).success
    columns = spec_of(path).metadata["dagster/column_schema"].columns
    assert {c.name: c.type for c in columns}["updated_at"] == "TIMESTAMP WITH TIME ZONE"


def test_owners_tags_group_and_the_yaml_as_code_come_from_the_pipeline(tmp_path):
    path = dummy_pipeline(
        tmp_path, owners=["team:data", "ada@example.com"], tags={"domain": "zoo"}, group="raw"
    )
    spec = spec_of(path)
    assert spec.owners == ["team:data", "ada@example.com"]
    assert spec.tags["domain"] == "zoo" and spec.group_name == "raw"
    [reference] = spec.metadata["dagster/code_references"].code_references
    assert reference.file_path == str(path.resolve())


def test_two_pipelines_of_one_source_stand_apart_in_the_graph(tmp_path):
    dummy_pipeline(tmp_path, "zoo_a", asset_key_prefix=["a"])
    dummy_pipeline(tmp_path, "zoo_b", asset_key_prefix=["b"])
    defs = build_definitions(tmp_path / "pipelines")
    graph = defs.resolve_asset_graph()
    groups = {key.path[0]: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"a": "zoo_a", "b": "zoo_b"}


@pytest.mark.parametrize(
    ("automation", "condition"),
    [
        ("eager", dg.AutomationCondition.eager()),
        ("on_missing", dg.AutomationCondition.on_missing()),
        (
            {"condition": "on_cron", "cron": "0 6 * * *", "timezone": "Europe/Paris"},
            dg.AutomationCondition.on_cron("0 6 * * *", "Europe/Paris"),
        ),
    ],
)
def test_automation_maps_to_dagster_s_condition(tmp_path, automation, condition):
    spec = spec_of(dummy_pipeline(tmp_path, automation=automation))
    assert spec.automation_condition == condition


@pytest.mark.parametrize(
    ("top", "message"),
    [
        (
            {"owners": ["data team"]},
            r"owners: \[0\] 'data team': an owner is an email or team:<name>",
        ),
        ({"tags": {"domain": "a b"}}, r"tags: .*domain: the value 'a b' must be"),
        ({"automation": {"condition": "on_cron"}}, r"automation: .*cron is given with on_cron"),
        (
            {"automation": "eager", "schedule": {"cron": "0 * * * *"}},
            r"give schedule or automation, not both",
        ),
    ],
)
def test_bad_orchestration_keys_name_the_field(tmp_path, top, message):
    with pytest.raises(ConfigError, match=message):
        load_pipeline(dummy_pipeline(tmp_path, **top))
