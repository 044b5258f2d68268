"""Cursors moved from the CLI into Dagster and back, and the full-refresh run tag."""

from __future__ import annotations

import json

import dagster as dg

from bizon_core.cli import main as bizon
from bizon_dagster import bizon_assets
from bizon_dagster.__main__ import main as bizon_dagster
from bizon_dagster.state import FULL_REFRESH_TAG, read_success

USERS = dg.AssetKey(["paged", "users"])


def records(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization.metadata["bizon/records"].value


def test_a_cursor_exported_by_the_cli_is_the_dagster_asset_s_cursor(
    make_pipeline, api, home, tmp_path, capsys
):
    pipeline = make_pipeline()
    assert bizon(["run", str(pipeline.path), "--stream", "users"]) == 0
    assert bizon(["state", "export", str(pipeline.path), "-o", str(tmp_path / "c.json")]) == 0
    assert bizon_dagster(["state", "import", str(pipeline.path), str(tmp_path / "c.json")]) == 0
    assert "users: cursor recorded on asset paged/users" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        imported = read_success(instance, USERS)
        assert imported is not None and imported.records == 25
        api.upsert("users", {**api.get("users", 4), "name": "changed"})
        assets = bizon_assets(pipeline)
        assert dg.materialize([assets], instance=instance, selection=[USERS]).success
        assert records(instance, USERS) == 1  # incremental from the CLI's cursor

        # And back: Dagster's cursor into a fresh CLI store.
        assert (
            bizon_dagster(["state", "export", str(pipeline.path), "-o", str(tmp_path / "d.json")])
            == 0
        )
        exported = json.loads((tmp_path / "d.json").read_text())["streams"]["users"]
        assert exported["started_at"] == read_success(instance, USERS).started_at.isoformat()
    other = tmp_path / "other.db"
    assert (
        bizon(
            ["state", "import", str(pipeline.path), str(tmp_path / "d.json"), "--state", str(other)]
        )
        == 0
    )
    assert bizon(["run", str(pipeline.path), "--stream", "users", "--state", str(other)]) == 0
    assert "users: 0 records" in capsys.readouterr().out


def test_the_full_refresh_tag_fetches_everything_and_records_a_new_cursor(make_pipeline, instance):
    assets = bizon_assets(make_pipeline())
    assert dg.materialize([assets], instance=instance, selection=[USERS]).success
    first = read_success(instance, USERS)
    assert dg.materialize([assets], instance=instance, selection=[USERS]).success
    assert records(instance, USERS) == 0
    tags = {FULL_REFRESH_TAG: "true"}
    assert dg.materialize([assets], instance=instance, selection=[USERS], tags=tags).success
    assert records(instance, USERS) == 25
    event = instance.get_latest_materialization_event(USERS).asset_materialization.metadata
    assert event["bizon/fetched_after"].value == "(full fetch)"
    assert read_success(instance, USERS).started_at > first.started_at


def test_an_export_of_another_pipeline_is_one_line(make_pipeline, home, tmp_path, capsys):
    pipeline = make_pipeline()
    (tmp_path / "x.json").write_text(json.dumps({"format": "bizon-state/1", "pipeline": "other"}))
    assert bizon_dagster(["state", "import", str(pipeline.path), str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: {tmp_path / 'x.json'}: exported from pipeline 'other', not 'paged_sync'\n"
    )
