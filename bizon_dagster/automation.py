"""Schedules, new-data sensors and run retries for a pipeline's assets."""

from __future__ import annotations

import logging

import orjson
from dagster import (
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from bizon_core.config import Pipeline
from bizon_core.secrets import redact
from bizon_dagster.assets import op_name

logger = logging.getLogger(__name__)


def run_retry_tags(pipeline: Pipeline) -> dict[str, str]:
    """Tags asking Dagster to rerun a failed run from its failed steps (needs run retries on)."""
    retries = pipeline.config.retries
    if not retries.enabled or retries.max_retries == 0:
        return {}
    return {
        "dagster/max_retries": str(retries.max_retries),
        "dagster/retry_strategy": "FROM_FAILURE",
    }


def pipeline_job(pipeline: Pipeline, assets: AssetsDefinition) -> UnresolvedAssetJobDefinition:
    """A job that syncs every stream of the pipeline."""
    return define_asset_job(
        name=f"{op_name(pipeline)}_job",
        selection=list(assets.keys),
        tags=run_retry_tags(pipeline),
        description=f"Syncs every stream of bizon pipeline {pipeline.name}.",
    )


def pipeline_schedule(
    pipeline: Pipeline, job: UnresolvedAssetJobDefinition
) -> ScheduleDefinition | None:
    """The schedule of `schedule:` in the YAML, running from the start; None without one."""
    schedule = pipeline.config.schedule
    if schedule is None:
        return None
    return ScheduleDefinition(
        name=f"{op_name(pipeline)}_schedule",
        job=job,
        cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Runs pipeline {pipeline.name} on `{schedule.cron}` ({schedule.timezone}).",
    )


def new_data_sensor(
    pipeline: Pipeline, keys: dict[str, AssetKey], job: UnresolvedAssetJobDefinition
) -> SensorDefinition | None:
    """A sensor that probes each stream and requests a sync of the streams whose probe changed.

    The probe is the source's `probe()` (its record count by default). The sensor's cursor
    keeps the last value seen per stream; the run key is the stream and its new value, so
    no change is ever requested twice. The first evaluation only records the values.
    """
    if not pipeline.config.sensor.enabled:
        return None

    @sensor(
        name=f"{op_name(pipeline)}_new_data",
        job=job,
        minimum_interval_seconds=pipeline.config.sensor.minimum_interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Syncs streams of pipeline {pipeline.name} when their source has new data.",
    )
    def _sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        previous: dict[str, str] = orjson.loads(context.cursor) if context.cursor else {}
        current = dict(previous)
        requests, problems = [], []
        for stream in pipeline.streams:
            value = _probe(pipeline, stream, problems)
            if value is None:
                continue
            current[stream] = value
            if stream in previous and previous[stream] != value:
                requests.append(
                    RunRequest(
                        run_key=f"{pipeline.name}:{stream}:{value}",
                        asset_selection=[keys[stream]],
                        tags={**run_retry_tags(pipeline), "bizon/trigger": "new_data"},
                    )
                )
        cursor = orjson.dumps(current, option=orjson.OPT_SORT_KEYS).decode()
        if not requests:
            reason = "; ".join(problems) or "no stream has new data"
            return SensorResult(skip_reason=SkipReason(reason), cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


def _probe(pipeline: Pipeline, stream: str, problems: list[str]) -> str | None:
    source = pipeline.source_class(pipeline.source_configs[stream])
    try:
        value = source.probe()
    except Exception as exc:  # a failed probe skips this evaluation, it does not fail the sensor
        problems.append(redact(f"{stream}: probe failed: {type(exc).__name__}: {exc}"))
        return None
    finally:
        source.close()
    if value is None:
        problems.append(f"{stream}: the source has no probe (get_total_records_count is None)")
        return None
    return str(value)
