"""Schedules, new-data sensors and run retries for a pipeline's assets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dagster import (
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from bizon_core.config import Pipeline, ScheduleConfig
from bizon_dagster.assets import op_name
from bizon_dagster.partitions import partitions_definition
from bizon_dagster.probe import SensorCursor, probe_stream
from bizon_dagster.state import read_success


class AssetJob(Protocol):
    """What `define_asset_job` returns (Dagster does not export its class): a job by name."""

    @property
    def name(self) -> str: ...


def run_retry_tags(pipeline: Pipeline) -> dict[str, str]:
    """Tags asking Dagster to rerun a failed run from its failed steps (needs run retries on).

    Retries off is an explicit 0, so an instance's default `max_retries` does not apply.
    """
    retries = pipeline.config.retries
    if not retries.enabled or retries.max_retries == 0:
        return {"dagster/max_retries": "0"}
    return {
        "dagster/max_retries": str(retries.max_retries),
        "dagster/retry_strategy": "FROM_FAILURE",
    }


def pipeline_job(
    pipeline: Pipeline, assets: AssetsDefinition | Sequence[AssetsDefinition]
) -> AssetJob:
    """A job that syncs every stream of the pipeline (its assets: one or one per stream)."""
    definitions = [assets] if isinstance(assets, AssetsDefinition) else list(assets)
    return define_asset_job(
        name=f"{op_name(pipeline)}_job",
        selection=[key for definition in definitions for key in definition.keys],
        tags=run_retry_tags(pipeline),
        description=f"Syncs every stream of bizon pipeline {pipeline.name}.",
    )


def pipeline_schedule(pipeline: Pipeline, job: AssetJob) -> ScheduleDefinition | None:
    """The schedule of `schedule:` in the YAML, running from the start; None without one."""
    configured = pipeline.config.schedule
    if configured is None:
        return None
    if pipeline.config.partitions is not None:
        return _partitions_schedule(pipeline, job, configured)
    return ScheduleDefinition(
        name=f"{op_name(pipeline)}_schedule",
        job=job,
        cron_schedule=configured.cron,
        execution_timezone=configured.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Runs pipeline {pipeline.name} on `{configured.cron}` "
        f"({configured.timezone}).",
    )


def _partitions_schedule(
    pipeline: Pipeline, job: AssetJob, config: ScheduleConfig
) -> ScheduleDefinition:
    """At each tick, one run of the latest complete partition and the `lookback` ones
    before it (a range: the assets' backfill policy is a single run)."""
    partitions = partitions_definition(pipeline.config.partitions)
    lookback = pipeline.config.partitions.lookback  # type: ignore[union-attr]
    assert partitions is not None

    @schedule(
        name=f"{op_name(pipeline)}_schedule",
        job=job,
        cron_schedule=config.cron,
        execution_timezone=config.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Loads the latest partition of pipeline {pipeline.name}"
        + (f" and the {lookback} before it" if lookback else "")
        + f" on `{config.cron}` ({config.timezone}).",
    )
    def _tick(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        keys = partitions.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return SkipReason("no partition is complete yet")
        chosen = keys[-(lookback + 1) :]
        return RunRequest(
            run_key=f"{chosen[0]}...{chosen[-1]}",
            tags={
                **run_retry_tags(pipeline),
                "dagster/asset_partition_range_start": chosen[0],
                "dagster/asset_partition_range_end": chosen[-1],
            },
        )

    return _tick


def new_data_sensor(
    pipeline: Pipeline, keys: dict[str, AssetKey], job: AssetJob
) -> SensorDefinition | None:
    """A sensor requesting a sync of each stream whose source has new data (see `probe`).

    An incremental stream already synced asks its source for the first page changed since
    the latest materialization's `last_run`: records there request a run keyed by that
    `last_run`, so a pending change is requested once until a sync moves the cursor.
    Other streams compare the source's `probe()` answer (its record count by default) with
    the one kept in the sensor's cursor; each change requests a run under a key of its
    own, even when an answer comes back to one seen before. The first evaluation of a
    probe only records its answer.
    """
    if not pipeline.config.sensor.enabled or pipeline.config.partitions is not None:
        return None  # a partition is synced for its window, not because data changed

    @sensor(
        name=f"{op_name(pipeline)}_new_data",
        job=job,
        minimum_interval_seconds=pipeline.config.sensor.minimum_interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Syncs streams of pipeline {pipeline.name} when their source has new data.",
    )
    def _sensor(context: SensorEvaluationContext) -> SensorResult:
        cursor = SensorCursor.load(context.cursor)
        requests, problems = [], []
        for stream, key in keys.items():
            found = probe_stream(pipeline, stream, read_success(context.instance, key))
            if found.problem is not None:
                problems.append(found.problem)
            change = found.change or cursor.observe(stream, found.value)
            if change is not None:
                requests.append(
                    RunRequest(
                        run_key=f"{pipeline.name}:{stream}:{change}",
                        asset_selection=[key],
                        tags={**run_retry_tags(pipeline), "bizon/trigger": "new_data"},
                    )
                )
        if not requests:
            reason = "; ".join(problems) or "no stream has new data"
            return SensorResult(skip_reason=SkipReason(reason), cursor=cursor.dump())
        return SensorResult(run_requests=requests, cursor=cursor.dump())

    return _sensor
