"""bizon: a connector SDK that loads API data page by page.

The public API, re-exported here::

    from bizon_core import AbstractSource, SourceConfig, SourceRecord, SourceIteration
    from bizon_core import load_pipeline, run_stream, SqliteStateStore

    pipeline = load_pipeline("pipeline.yml")
    for stream in pipeline.streams:
        result = run_stream(pipeline, stream, SqliteStateStore())
        print(result.records, "records")
"""

from bizon_core.config import Pipeline, PipelineConfig, load_pipeline, pipeline_from_dict
from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.errors import (
    BizonError,
    ConfigError,
    DestinationError,
    DiscoveryError,
    PaginationLoopError,
    RecordError,
    SourceError,
    StateError,
)
from bizon_core.source.config import SourceConfig, SourceSyncModes
from bizon_core.source.incremental import cursor_instant, is_after, records_after
from bizon_core.source.models import SourceIncrementalState, SourceIteration, SourceRecord
from bizon_core.source.pagination import (
    CursorPaginator,
    KeysetPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageDecision,
    PageNumberPaginator,
    Paginator,
    SinglePagePaginator,
    StopReason,
)
from bizon_core.source.source import AbstractSource
from bizon_core.sync.runner import RunProgress, RunResult, run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import Checkpoint, StateStore, StreamKey, SuccessfulRun

__all__ = [
    "AbstractDestination",
    "AbstractSource",
    "BizonError",
    "Checkpoint",
    "ConfigError",
    "CursorPaginator",
    "DestinationConfig",
    "DestinationError",
    "DiscoveryError",
    "KeysetPaginator",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageDecision",
    "PageNumberPaginator",
    "PaginationLoopError",
    "Paginator",
    "Pipeline",
    "PipelineConfig",
    "RecordError",
    "RunProgress",
    "RunResult",
    "SinglePagePaginator",
    "SourceConfig",
    "SourceError",
    "SourceIncrementalState",
    "SourceIteration",
    "SourceRecord",
    "SourceSyncModes",
    "SqliteStateStore",
    "StateError",
    "StateStore",
    "StopReason",
    "StreamKey",
    "SuccessfulRun",
    "WriteContext",
    "cursor_instant",
    "is_after",
    "load_pipeline",
    "pipeline_from_dict",
    "records_after",
    "run_stream",
]
