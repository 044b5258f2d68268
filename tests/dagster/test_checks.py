"""The asset checks of every stream, run with its materialization on a real instance."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bizon_dagster import bizon_assets

EXAMPLE = Path(__file__).parents[2] / "connectors/sources/dummy/config/dummy.example.yml"
CREATURES = dg.AssetKey(["dummy", "creatures"])
USERS = dg.AssetKey(["paged", "users"])


def evaluations(
    result: dg.ExecuteInMemoryResult, key: dg.AssetKey
) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == key}


@pytest.fixture
def duckdb_pipeline(make_pipeline, tmp_path):
    path = tmp_path / "paged.duckdb"
    return make_pipeline(destination={"name": "duckdb", "config": {"path": str(path)}}), path


def test_the_checks_pass_on_the_example_pipeline(instance):
    result = dg.materialize([bizon_assets(EXAMPLE)], instance=instance)
    checks = evaluations(result, CREATURES)
    assert set(checks) == {"ids", "loaded_all_records", "schema_unchanged"}
    assert all(c.passed for c in checks.values()), checks
    assert checks["loaded_all_records"].metadata["rows_loaded"].value == 25


def test_a_duplicated_id_at_the_destination_fails_the_ids_check(instance, duckdb_pipeline):
    pipeline, path = duckdb_pipeline
    assets = bizon_assets(pipeline)
    assert dg.materialize([assets], instance=instance, selection=[USERS]).success
    with duckdb.connect(str(path)) as db:
        db.execute("INSERT INTO main.users SELECT * FROM main.users WHERE \"_bizon_id\" = '3'")
    result = dg.materialize([assets], instance=instance, selection=[USERS], raise_on_error=False)
    ids = evaluations(result, USERS)["ids"]
    assert not ids.passed and ids.severity == dg.AssetCheckSeverity.ERROR
    assert ids.metadata["duplicate_ids"].value == 1 and ids.metadata["null_ids"].value == 0


def test_a_new_column_is_a_schema_warning(instance, duckdb_pipeline, api):
    pipeline, _ = duckdb_pipeline
    assets = bizon_assets(pipeline)
    first = dg.materialize([assets], instance=instance, selection=[USERS])
    assert evaluations(first, USERS)["schema_unchanged"].passed
    api.upsert("users", {**api.get("users", 4), "nickname": "Four"})
    second = dg.materialize([assets], instance=instance, selection=[USERS])
    schema = evaluations(second, USERS)["schema_unchanged"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.WARN
    assert schema.metadata["added"].value == "nickname"


def test_a_destination_that_cannot_report_gets_no_checks(make_pipeline):
    assert not bizon_assets(make_pipeline()).check_specs_by_output_name  # JSON lines


def test_a_freshness_policy_comes_from_the_yaml(make_pipeline):
    [spec, _] = bizon_assets(make_pipeline(checks={"freshness": "6h"})).specs
    assert spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6))
