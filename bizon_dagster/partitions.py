"""Time-window partitions from `partitions:` in the YAML, and the windows a run syncs."""

from __future__ import annotations

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from bizon_core.config import PartitionsConfig
from bizon_core.sync.state import TimeWindow

_BY_TYPE = {
    "hourly": HourlyPartitionsDefinition,
    "daily": DailyPartitionsDefinition,
    "weekly": WeeklyPartitionsDefinition,
    "monthly": MonthlyPartitionsDefinition,
}


def partitions_definition(config: PartitionsConfig | None) -> TimeWindowPartitionsDefinition | None:
    """Dagster's partitions of `partitions:`, None without it."""
    if config is None:
        return None
    return _BY_TYPE[config.type](
        start_date=config.start, timezone=config.timezone, end_offset=config.end_offset
    )


def run_windows(context: AssetExecutionContext) -> list[TimeWindow]:
    """The partitions the run materializes (one, or a backfill's range), as windows."""
    partitions = context.assets_def.partitions_def
    assert isinstance(partitions, TimeWindowPartitionsDefinition)
    keys = partitions.get_partition_keys_in_range(context.partition_key_range)
    windows = []
    for key in keys:
        window = partitions.time_window_for_partition_key(key)
        windows.append(TimeWindow(key=key, start=window.start, end=window.end))
    return windows
