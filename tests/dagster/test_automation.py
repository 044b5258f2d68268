"""Schedules and new-data sensors, evaluated as Dagster evaluates them."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from bizon_dagster import bizon_assets, new_data_sensor, pipeline_job, pipeline_schedule

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
    assert pipeline_job(off, bizon_assets(off)).tags == {}


def test_the_sensor_requests_a_run_when_a_stream_has_new_data(make_pipeline, instance, api):
    pipeline = make_pipeline()
    assets = bizon_assets(pipeline)
    keys = {"users": USERS, "orders": ORDERS}
    sensor = new_data_sensor(pipeline, keys, pipeline_job(pipeline, assets))

    first = sensor(dg.build_sensor_context(instance=instance))
    assert first.run_requests == [] and first.cursor == '{"orders":"25","users":"25"}'

    same = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert same.run_requests == []
    assert same.skip_reason.skip_message == "no stream has new data"

    api.upsert("users", {"id": 26, "name": "new"})
    changed = sensor(dg.build_sensor_context(instance=instance, cursor=same.cursor))
    assert [(r.run_key, r.asset_selection) for r in changed.run_requests] == [
        ("paged_sync:users:26", [USERS])
    ]
    assert changed.run_requests[0].tags["bizon/trigger"] == "new_data"
    assert changed.cursor == '{"orders":"25","users":"26"}'


def test_a_failing_probe_skips_without_failing_the_sensor(make_pipeline, instance, monkeypatch):
    pipeline = make_pipeline(source={"streams": ["users"], "base_url": "http://127.0.0.1:9"})
    sensor = new_data_sensor(
        pipeline, {"users": USERS}, pipeline_job(pipeline, bizon_assets(pipeline))
    )
    result = sensor(dg.build_sensor_context(instance=instance, cursor='{"users":"25"}'))
    assert result.run_requests == []
    assert result.skip_reason.skip_message.startswith("users: probe failed: ConnectionError")
    assert result.cursor == '{"users":"25"}'
