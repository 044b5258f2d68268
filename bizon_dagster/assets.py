"""The asset factory: a pipeline config becomes one Dagster `multi_asset`, an asset per stream."""

import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
    multi_asset,
)

from bizon_core.config import Pipeline, load_pipeline
from bizon_core.errors import BizonError, ConfigError
from bizon_core.secrets import install_log_redaction, mask, redact
from bizon_core.sync.runner import RunProgress, RunResult, run_stream
from bizon_core.sync.state import TimeWindow
from bizon_dagster.checks import check_specs, evaluate, previous_columns
from bizon_dagster.logs import forward_project_logs
from bizon_dagster.partitions import partitions_definition, run_windows
from bizon_dagster.state import (
    FULL_REFRESH_TAG,
    RESUME_TAG,
    DagsterStateStore,
    success_metadata,
)
from bizon_dagster.translator import BizonStream, BizonTranslator

#: Seconds between two progress lines in the run logs.
PROGRESS_INTERVAL = 10.0
#: Default seconds between two intermediate checkpoints (observations) of a stream.
CHECKPOINT_INTERVAL = 5.0


def bizon_assets(
    pipeline: str | Path | Pipeline,
    *,
    translator: BizonTranslator | None = None,
    name: str | None = None,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
    streams: Sequence[str] | None = None,
) -> AssetsDefinition:
    """A `multi_asset` syncing the pipeline's streams (or `streams`), one asset per stream.

    `pipeline` is a pipeline YAML path or an already loaded `Pipeline`. Each stream's
    cursor is kept in the metadata of its asset's materializations, and read back from
    the Dagster instance by the next run; its asset checks (see `bizon_dagster.checks`)
    run with it. The streams run one after the other in one step: see
    `bizon_stream_assets` for a step per stream. The op runs in the concurrency pool
    `bizon_<pipeline>` and retries failed syncs (they resume from their checkpoints) as
    `retries:` in the YAML says. An intermediate checkpoint is recorded at most every
    `checkpoint_interval` seconds (0: after every durable destination flush); the one
    after a source failure and the one before the commit always are. Example::

        from bizon_dagster import bizon_assets
        import dagster as dg

        defs = dg.Definitions(assets=[bizon_assets("pipelines/hubspot.yml")])
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    chosen = list(streams) if streams is not None else pipeline.streams
    unknown = [s for s in chosen if s not in pipeline.streams]
    if unknown or not chosen:
        raise ConfigError(
            f"streams: {', '.join(unknown) or '(none)'}: not streams of pipeline "
            f"{pipeline.name} (its streams: {', '.join(pipeline.streams)})"
        )
    specs = stream_specs(pipeline, translator or BizonTranslator(), chosen)
    keys = {stream: spec.key for stream, spec in specs.items()}
    one = chosen[0] if streams is not None and len(chosen) == 1 else None
    partitions = partitions_definition(pipeline.config.partitions)
    if partitions is not None:
        # Each partition is logged as its own materialization, with its own metadata.
        specs = {s: spec.replace_attributes(skippable=True) for s, spec in specs.items()}

    @multi_asset(
        name=name or op_name(pipeline, one),
        specs=list(specs.values()),
        check_specs=check_specs(pipeline, keys),
        partitions_def=partitions,
        # A backfill of many partitions is one run, which syncs them one after the other.
        backfill_policy=BackfillPolicy.single_run() if partitions is not None else None,
        can_subset=True,
        pool=pool_name(pipeline, one),
        retry_policy=retry_policy(pipeline),
        op_tags={"bizon/pipeline": pipeline.name},
    )
    def _sync(context: AssetExecutionContext) -> Iterator[MaterializeResult | AssetCheckResult]:
        yield from sync_streams(context, pipeline, keys, checkpoint_interval)

    return _sync


def bizon_stream_assets(
    pipeline: str | Path | Pipeline,
    *,
    translator: BizonTranslator | None = None,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
    per_stream: bool | None = None,
) -> list[AssetsDefinition]:
    """The pipeline's assets: one `multi_asset` for all streams, or, with `per_stream`
    (default: `execution.per_stream` of the YAML), one per stream, each its own step. A
    step per stream lets the multiprocess executor sync streams in parallel, retries a
    failed stream alone, and keeps what the other streams loaded."""
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    if per_stream is None:
        per_stream = pipeline.config.execution.per_stream
    groups = [[s] for s in pipeline.streams] if per_stream else [None]
    return [
        bizon_assets(
            pipeline, translator=translator, checkpoint_interval=checkpoint_interval, streams=g
        )
        for g in groups
    ]


def stream_specs(
    pipeline: Pipeline, translator: BizonTranslator, streams: Sequence[str] | None = None
) -> dict[str, AssetSpec]:
    """The asset spec of each stream of the pipeline (or of `streams`), by stream name."""
    return {
        s: translator.get_asset_spec(BizonStream(pipeline, s)) for s in streams or pipeline.streams
    }


def op_name(pipeline: Pipeline, stream: str | None = None) -> str:
    """`bizon_<pipeline name>` (`bizon_<pipeline>__<stream>` for one stream's step), made a
    valid Dagster name."""
    name = pipeline.name if stream is None else f"{pipeline.name}__{stream}"
    return "bizon_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def pool_name(pipeline: Pipeline, stream: str | None = None) -> str:
    """The concurrency pool of the op: set its limit to 1 to keep runs apart."""
    return op_name(pipeline, stream)


def retry_policy(pipeline: Pipeline) -> RetryPolicy | None:
    """Step retries from `retries:`; each retry resumes its streams from their checkpoints."""
    retries = pipeline.config.retries
    if not retries.enabled or retries.max_retries == 0:
        return None
    return RetryPolicy(
        max_retries=retries.max_retries,
        delay=retries.delay_seconds,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )


def sync_streams(
    context: AssetExecutionContext,
    pipeline: Pipeline,
    keys: dict[str, AssetKey],
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Sync every selected stream; one `MaterializeResult` each and its checks' results,
    then fail if any failed.

    A run tagged `bizon/resume: "false"` discards the streams' checkpoints and starts over;
    one tagged `bizon/full_refresh: "true"` also ignores their cursors and fetches
    everything. The project's log lines go to the run's event log meanwhile (see
    `forward_project_logs`).
    """
    install_log_redaction()
    tags = context.run.tags
    full_refresh = (tags.get(FULL_REFRESH_TAG) or "").lower() == "true"
    # Only the first attempt starts over: its retries resume from its own checkpoints.
    start_over = context.retry_number == 0 and (
        full_refresh or (tags.get(RESUME_TAG) or "").lower() == "false"
    )
    windows: list[TimeWindow | None] = [None]
    if context.assets_def.partitions_def is not None:
        windows = list(run_windows(context))
    failed: list[str] = []
    with forward_project_logs(context):
        for stream, key in keys.items():
            if key not in context.selected_asset_keys:
                continue
            try:
                before = previous_columns(context.instance, key)
                for window in windows:
                    partition = window.key if window is not None else None
                    store = DagsterStateStore(
                        context, key, checkpoint_interval, full_refresh, partition
                    )
                    # Held until Dagster has stored the materialization (it does so before
                    # resuming this generator): see `DagsterStateStore.hold`. A partition's
                    # load replaces its rows, so logging its materialization is enough.
                    with store.hold(pipeline.stream_key(stream, partition)):
                        if start_over:
                            store.discard_checkpoint()
                        result = run_stream(
                            pipeline,
                            stream,
                            store,
                            resume=not start_over,
                            on_progress=_ProgressLog(context),
                            window=window,
                        )
                        context.log.info(_summary(result))
                        metadata = result_metadata(result)
                        if partition is None:
                            yield MaterializeResult(asset_key=key, metadata=metadata)
                        else:
                            context.log_event(
                                AssetMaterialization(key, partition=partition, metadata=metadata)
                            )
                yield from evaluate(context, pipeline, key, result, before)
            except BizonError as exc:
                message = redact(str(exc))
                context.log.error(f"{stream}: sync failed, its cursor is unchanged: {message}")
                failed.append(f"{stream}: {message}")
    if failed:
        # `from None`: the chained exceptions may quote URLs or values the message masks.
        raise Failure(
            description=f"{len(failed)} stream(s) of pipeline {pipeline.name} failed: "
            + "; ".join(failed),
            allow_retries=True,
        ) from None


def result_metadata(result: RunResult) -> dict[str, Any]:
    """The materialization metadata: the cursor, and what the run did."""
    destination = mask(result.destination)
    metadata: dict[str, Any] = {
        **success_metadata(result.run),
        # A table's row count when the destination knows it (a partition's: the rows its
        # load committed), else the records synced.
        "dagster/row_count": (
            destination.pop("loaded_rows", result.records)
            if result.key.partition is not None
            else destination.pop("row_count", result.records)
        ),
        "bizon/records": result.records,
        "bizon/pages": result.pages,
        "bizon/duration_seconds": round(result.duration_seconds, 3),
        "bizon/records_per_second": round(result.records_per_second, 1),
        "bizon/fetched_after": (
            result.fetched_after.isoformat() if result.fetched_after else "(full fetch)"
        ),
    }
    if result.resumed_from is not None:
        metadata["bizon/resumed_after_records"] = result.resumed_from.records
        metadata["bizon/attempt_records"] = result.attempt_records
    if result.max_cursor is not None:
        metadata["bizon/max_cursor"] = result.max_cursor
    if "table_name" in destination:
        metadata["dagster/table_name"] = destination.pop("table_name")
    if "columns" in destination:
        columns = [TableColumn(c["name"], c["type"]) for c in destination.pop("columns")]
        metadata["dagster/column_schema"] = TableSchema(columns=columns)
    for name, value in destination.items():
        metadata[f"bizon/destination_{name}"] = (
            MetadataValue.path(value) if name == "path" else MetadataValue.text(str(value))
        )
    return metadata


def _summary(result: RunResult) -> str:
    """The run log line of a synced stream: the run's totals, and this attempt's rate."""
    attempt = (
        f" ({result.attempt_records:,} in this attempt, resumed after "
        f"{result.resumed_from.records:,})"
        if result.resumed_from is not None
        else ""
    )
    return (
        f"{result.key.stream}: {result.records:,} records in {result.pages:,} pages{attempt}, "
        f"{result.duration_seconds:.1f}s ({result.records_per_second:,.0f} records/s)"
        + (f", max cursor {result.max_cursor}" if result.max_cursor else "")
    )


class _ProgressLog:
    """Progress of a stream in the run logs, every `PROGRESS_INTERVAL` seconds; the time
    left only when the source's count is what the run fetches (a full fetch)."""

    def __init__(self, context: AssetExecutionContext):
        self.context = context
        self.last = time.monotonic()

    def __call__(self, progress: RunProgress) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        eta = progress.eta_seconds
        attempt = (
            f" ({progress.attempt_records:,} in this attempt)" if progress.resumed_records else ""
        )
        self.context.log.info(
            f"{progress.key.stream}: {progress.pages:,} pages, {progress.records:,} records"
            f"{attempt}, {progress.records_per_second:,.0f} records/s"
            + (f", about {eta:,.0f}s left" if eta is not None else "")
        )
