"""Schedules and new-data sensors, evaluated as Dagster evaluates them."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import orjson

from bizon_core.config import Pipeline
from bizon_dagster import bizon_assets, new_data_sensor, pipeline_job, pipeline_schedule
from bizon_dagster.state import read_success

USERS = dg.AssetKey(["paged", "users"])
ORDERS = dg.AssetKey(["paged", "orders"])


def test_a_schedule_in_the_yaml_targets_the_pipeline_job(make_pipeline, instance):
    pipeline = make_pipeline(schedule={"cron": "15 * * * *", "timezone": "Europe/Paris"})
    job = pipeline_job(pipeline, bizon_assets(pipeline))
    schedule = pipeline_schedule(pipeline, job)
    assert schedule.cron_schedule == "15 * * * *"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.job_name == "bizon_paged_sync_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 27, 10, 15)
    )
    data = schedule.evaluate_tick(context)
    assert len(data.run_requests) == 1
    assert pipeline_schedule(make_pipeline(name="unscheduled"), job) is None


def test_run_retries_are_tagged_on_the_job(make_pipeline):
    pipeline = make_pipeline(retries={"max_retries": 4})
    job = pipeline_job(pipeline, bizon_assets(pipeline))
    assert job.tags == {"dagster/max_retries": "4", "dagster/retry_strategy": "FROM_FAILURE"}
    off = make_pipeline(name="no_retries", retries={"enabled": False})
    assert pipeline_job(off, bizon_assets(off)).tags == {"dagster/max_retries": "0"}


def users_sensor(pipeline: Pipeline) -> dg.SensorDefinition:
    return new_data_sensor(
        pipeline, {"users": USERS}, pipeline_job(pipeline, bizon_assets(pipeline))
    )


def run_keys(result: dg.SensorResult) -> list[str]:
    return [request.run_key for request in result.run_requests]


def test_the_sensor_requests_a_run_when_a_stream_has_new_data(make_pipeline, instance, api):
    pipeline = make_pipeline()
    assets = bizon_assets(pipeline)
    keys = {"users": USERS, "orders": ORDERS}
    sensor = new_data_sensor(pipeline, keys, pipeline_job(pipeline, assets))

    first = sensor(dg.build_sensor_context(instance=instance))
    assert first.run_requests == [] and first.cursor

    same = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert same.run_requests == []
    assert same.skip_reason.skip_message == "no stream has new data"

    api.upsert("users", {"id": 26, "name": "new"})
    changed = sensor(dg.build_sensor_context(instance=instance, cursor=same.cursor))
    assert [r.asset_selection for r in changed.run_requests] == [[USERS]]
    assert changed.run_requests[0].tags["bizon/trigger"] == "new_data"
    assert run_keys(changed)[0].startswith("paged_sync:users:")
    # The same tick evaluated again from the same cursor asks for the same run.
    again = sensor(dg.build_sensor_context(instance=instance, cursor=same.cursor))
    assert run_keys(again) == run_keys(changed)


def test_a_count_coming_back_to_a_value_seen_before_still_requests_a_run(
    make_pipeline, instance, api
):
    sensor = users_sensor(make_pipeline(source={"sync_mode": "full_refresh"}))
    cursor = sensor(dg.build_sensor_context(instance=instance)).cursor
    keys = []
    for change in (26, -26, 26):  # 25 -> 26 -> 25 -> 26
        if change > 0:
            api.upsert("users", {"id": change, "name": "new"})
        else:
            api.remove("users", -change)
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert len(result.run_requests) == 1
        keys.append(result.run_requests[0].run_key)
        cursor = result.cursor
    assert len(set(keys)) == 3
    quiet = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert quiet.run_requests == []
    assert quiet.skip_reason.skip_message == "no stream has new data"


def test_an_update_of_an_existing_record_requests_a_run_of_an_incremental_stream(
    make_pipeline, instance, server, api
):
    pipeline = make_pipeline(source={"streams": ["users"]})
    sensor = users_sensor(pipeline)
    assets = bizon_assets(pipeline)
    assert dg.materialize([assets], instance=instance).success
    last_run = read_success(instance, USERS).started_at.isoformat()

    cursor = sensor(dg.build_sensor_context(instance=instance)).cursor
    quiet = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert quiet.skip_reason.skip_message == "no stream has new data"

    api.upsert("users", {**api.get("users", 4), "name": "changed"})  # the count stays 25
    before = len(server.requests)
    changed = sensor(dg.build_sensor_context(instance=instance, cursor=quiet.cursor))
    asked = server.requests[before:]
    assert [(r.path, r.query["updated_after"].replace(" ", "+")) for r in asked] == [
        ("/cursor/users", last_run)
    ]  # one request: the first page changed since the last sync
    assert run_keys(changed) == [f"paged_sync:users:changed_after:{last_run}"]
    # Until a sync moves the cursor, the change is requested under the same key.
    pending = sensor(dg.build_sensor_context(instance=instance, cursor=changed.cursor))
    assert run_keys(pending) == run_keys(changed)

    assert dg.materialize([assets], instance=instance).success
    synced = sensor(dg.build_sensor_context(instance=instance, cursor=pending.cursor))
    assert synced.run_requests == []
    assert synced.skip_reason.skip_message == "no stream has new data"


def test_a_failing_probe_skips_without_failing_the_sensor(make_pipeline, instance, monkeypatch):
    pipeline = make_pipeline(source={"streams": ["users"], "base_url": "http://127.0.0.1:9"})
    sensor = users_sensor(pipeline)
    # A cursor of an older bizon ({stream: answer}) is read too.
    result = sensor(dg.build_sensor_context(instance=instance, cursor='{"users":"25"}'))
    assert result.run_requests == []
    assert result.skip_reason.skip_message.startswith("users: probe failed: ConnectionError")
    assert orjson.loads(result.cursor)["streams"] == {"users": {"changes": 0, "value": "25"}}
