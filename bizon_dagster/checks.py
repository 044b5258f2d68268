"""The asset checks of every stream, evaluated with its materialization.

- `ids`: no row of the destination's table lacks an id, and no id is there twice (unless
  the destination appends every version); an error.
- `loaded_all_records`: the rows the load committed equal the records the source sent;
  a warning (a source that sends one record twice in a run loads it once).
- `schema_unchanged`: no column was added or changed type since the previous
  materialization; a warning, so that downstream users hear of it.

They need a destination that can report on its table (`AbstractDestination.table_report`,
the SQL destinations); others get none. The freshness check of `checks.freshness` is
Dagster's own (`build_last_update_freshness_checks`), in the pipeline's definitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
)

from bizon_core.config import Pipeline
from bizon_core.destination.destination import AbstractDestination
from bizon_core.sync.runner import RunResult

IDS, LOADED, SCHEMA = "ids", "loaded_all_records", "schema_unchanged"


def can_check(pipeline: Pipeline) -> bool:
    """Whether the pipeline's destination can report on its tables."""
    return pipeline.destination_class.table_report is not AbstractDestination.table_report


def check_specs(pipeline: Pipeline, keys: dict[str, AssetKey]) -> list[AssetCheckSpec]:
    """The checks of each stream's asset."""
    if not can_check(pipeline):
        return []
    return [
        spec
        for key in keys.values()
        for spec in (
            AssetCheckSpec(IDS, asset=key, description="Every row has an id, and only one row."),
            AssetCheckSpec(
                LOADED, asset=key, description="The load committed every record the source sent."
            ),
            AssetCheckSpec(
                SCHEMA, asset=key, description="No column was added or changed type (a warning)."
            ),
        )
    ]


def previous_columns(instance: DagsterInstance, key: AssetKey) -> dict[str, str] | None:
    """The columns of the asset's latest materialization, None if it recorded none."""
    event = instance.get_latest_materialization_event(key)
    schema = event.asset_materialization.metadata.get("dagster/column_schema") if event else None
    if schema is None:
        return None
    return {column.name: column.type for column in schema.value.columns}


def evaluate(
    context: AssetExecutionContext,
    pipeline: Pipeline,
    key: AssetKey,
    result: RunResult,
    before: dict[str, str] | None,
) -> Iterator[AssetCheckResult]:
    """The selected checks of `key` after its stream's `result` (`before`: the columns of
    the previous materialization)."""
    selected = {c.name for c in context.selected_asset_check_keys if c.asset_key == key}
    if not selected:
        return
    report = pipeline.destination(result.key.stream, run_id=result.run.run_id).table_report()
    if report is None:
        return
    if IDS in selected:
        duplicates = 0 if report.keeps_versions else report.duplicate_ids
        yield AssetCheckResult(
            asset_key=key,
            check_name=IDS,
            passed=report.null_ids == 0 and duplicates == 0,
            metadata={
                "rows": report.rows,
                "null_ids": report.null_ids,
                "duplicate_ids": duplicates,
            },
        )
    if LOADED in selected:
        loaded = result.destination.get("loaded_rows")
        yield AssetCheckResult(
            asset_key=key,
            check_name=LOADED,
            passed=loaded == result.records,
            severity=AssetCheckSeverity.WARN,
            metadata={"records_sent": result.records, "rows_loaded": _number(loaded)},
        )
    if SCHEMA in selected:
        now = dict(report.columns)
        added = sorted(set(now) - set(before or now))
        changed = sorted(
            f"{c}: {before[c]} -> {now[c]}"
            for c in now
            if before and c in before and before[c] != now[c]
        )
        yield AssetCheckResult(
            asset_key=key,
            check_name=SCHEMA,
            passed=not added and not changed,
            severity=AssetCheckSeverity.WARN,
            metadata={"added": ", ".join(added) or "-", "changed": ", ".join(changed) or "-"},
        )


def _number(value: Any) -> int:
    return value if isinstance(value, int) else -1
