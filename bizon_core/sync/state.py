"""Where a stream's sync state lives: the last successful run and in-run checkpoints.

The runner talks to a `StateStore`; the CLI uses `SqliteStateStore`, the Dagster
integration keeps the same facts in materialization metadata. A cursor moves only
through `commit`, which the runner calls after the destination committed the data.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bizon_core.source.config import SourceSyncModes


@dataclass(frozen=True)
class StreamKey:
    """Identifies a synced stream: the pipeline, the source and the stream."""

    pipeline: str
    source: str
    stream: str
    #: A time partition of the stream (its key, e.g. `2026-03-01`), synced on its own.
    partition: str | None = None

    def __str__(self) -> str:
        where = f"{self.pipeline}/{self.source}/{self.stream}"
        return where if self.partition is None else f"{where}[{self.partition}]"


#: The field a partition's records carry its key in, at the destination.
PARTITION_FIELD = "_bizon_partition"


@dataclass(frozen=True)
class TimeWindow:
    """A partition of a stream: the records whose cursor is in `[start, end)`."""

    key: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Checkpoint:
    """Progress of a run that may be resumed after a failure."""

    run_id: str
    #: Start of the first attempt of this run: it becomes `last_run` once committed.
    started_at: datetime
    sync_mode: SourceSyncModes
    pagination: dict[str, Any]
    records: int
    pages: int
    #: The destination's resume marker for everything written up to `pagination`.
    destination: dict[str, Any]
    #: `last_run` the interrupted attempt was fetching after (incremental), to fetch the same.
    source_last_run: datetime | None = None
    created_at: datetime | None = None
    #: The stream's state over the pages up to `pagination` (`{"max_cursor": ...}`).
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuccessfulRun:
    """A committed sync: its start time is the next incremental run's `last_run`."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    sync_mode: SourceSyncModes
    records: int
    pages: int
    cursor_field: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


class StateStore(Protocol):
    """What the runner needs from a state store."""

    #: Seconds the store wants between two intermediate checkpoints (0: every one). The
    #: runner never throttles the checkpoint after a source failure nor the one before
    #: the commit: those are the resume points that matter. Optional, 0 when absent.
    checkpoint_interval: float

    def last_success(self, key: StreamKey) -> SuccessfulRun | None:
        """The latest committed run of the stream, or None."""

    def resume_point(self, key: StreamKey) -> Checkpoint | None:
        """The newest checkpoint of a failed run that is newer than the last success."""

    def lock(self, key: StreamKey) -> AbstractContextManager[None]:
        """Hold the stream for one run; raises `StateError` if another run holds it."""

    def checkpoint(self, key: StreamKey, checkpoint: Checkpoint) -> None:
        """Record progress of the current run (after a durable destination write)."""

    def commit(self, key: StreamKey, run: SuccessfulRun) -> None:
        """Record a successful run; this is what moves the cursor."""
