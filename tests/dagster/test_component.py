"""`BizonComponent` with Dagster's component test helpers, and with `dg` in a project made
by Dagster's own `create-dagster project`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from bizon_dagster import BizonComponent

BIN = Path(sys.executable).parent
# Dagster's template scope: 1.13 also has `dg.AutomationCondition`, 1.12 only this.
HOURLY = "{{ automation_condition.on_cron('0 * * * *') }}"
CREATURES = dg.AssetKey(["dummy", "creatures"])


def test_the_scaffolded_component_loads_and_materializes(instance):
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=BizonComponent, defs_path="zoo")
        assert yaml.safe_load((path / "defs.yaml").read_text())["attributes"] == {
            "pipeline": "pipeline.yml"
        }
        with sandbox.build_all_defs() as defs:
            assert dg.materialize([defs.resolve_assets_def(CREATURES)], instance=instance).success
    assert instance.get_latest_materialization_event(CREATURES) is not None


def test_translation_sets_asset_attributes_per_stream(tmp_path):
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=BizonComponent, defs_path="zoo")
        translated = {
            "type": "bizon_dagster.BizonComponent",
            "attributes": {
                "pipeline": "pipeline.yml",
                "translation": {
                    "key_prefix": ["raw"],
                    "group_name": "zoo_{{ pipeline }}",
                    "owners": ["team:zoo"],
                    "tags": {"stream": "{{ stream }}"},
                    "kinds": ["zoo"],
                    "automation_condition": HOURLY,
                },
            },
        }
        (path / "defs.yaml").write_text(yaml.safe_dump(translated))
        with sandbox.build_all_defs() as defs:
            [spec] = defs.resolve_all_asset_specs()
    assert spec.key == CREATURES.with_prefix("raw")
    assert spec.group_name == "zoo_dummy_to_duckdb" and spec.owners == ["team:zoo"]
    assert spec.tags["stream"] == "creatures" and "zoo" in spec.kinds
    assert spec.automation_condition == dg.AutomationCondition.on_cron("0 * * * *")


@pytest.fixture
def project(tmp_path, home):
    """A project made by `create-dagster project`, its code importable by `dg`."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(BIN.parent),
        "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
        "PYTHONPATH": "src",
    }
    made = subprocess.run(
        [BIN / "create-dagster", "project", "zoo_project", "--no-uv-sync"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    root = tmp_path / "zoo_project"

    def dg_(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BIN / "dg", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )

    return root, dg_


def test_dg_scaffolds_checks_and_lists_the_component(project):
    root, dg_ = project
    scaffolded = dg_("scaffold", "defs", "bizon_dagster.BizonComponent", "zoo")
    assert scaffolded.returncode == 0, scaffolded.stderr
    assert (root / "src/zoo_project/defs/zoo/pipeline.yml").is_file()
    checked = dg_("check", "defs")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    listed = dg_("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    defs = json.loads(listed.stdout)
    # `asset_key` from dg 1.13 on, `key` before.
    assert "dummy/creatures" in {a.get("asset_key", a.get("key")) for a in defs["assets"]}
    assert "bizon_dummy_to_duckdb_new_data" in {s["name"] for s in defs["sensors"]}
    listed = json.loads(dg_("list", "components", "--json").stdout)
    components = listed["items"] if isinstance(listed, dict) else listed  # a list before 1.13
    assert "bizon_dagster.BizonComponent" in {c["key"] for c in components}


def test_dg_check_defs_names_a_wrong_attribute_and_a_wrong_pipeline_field(project):
    root, dg_ = project
    assert dg_("scaffold", "defs", "bizon_dagster.BizonComponent", "zoo").returncode == 0
    defs_yaml = root / "src/zoo_project/defs/zoo/defs.yaml"
    defs_yaml.write_text(
        "type: bizon_dagster.BizonComponent\nattributes:\n  pipelin: pipeline.yml\n"
    )
    checked = dg_("check", "defs")
    assert checked.returncode != 0 and "pipelin" in checked.stdout + checked.stderr
    defs_yaml.write_text(
        "type: bizon_dagster.BizonComponent\nattributes:\n  pipeline: pipeline.yml\n"
    )
    pipeline = root / "src/zoo_project/defs/zoo/pipeline.yml"
    pipeline.write_text(pipeline.read_text().replace("sync_mode:", "sync_mod:"))
    checked = dg_("check", "defs")
    output = checked.stdout + checked.stderr
    assert (
        checked.returncode != 0
        and "pipeline.yml: source.sync_mod: unknown field (did you mean 'sync_mode'?)" in output
    )
