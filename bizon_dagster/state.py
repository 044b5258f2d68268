"""`DagsterStateStore`: a stream's sync state kept in Dagster's own event log.

- the cursor is the metadata of the asset's latest materialization (`bizon/last_run`, ...);
- checkpoints are `AssetObservation`s logged after each durable destination flush;
- two runs of one stream are kept apart by a concurrency slot on the instance (`slot`).

Nothing is stored anywhere else, so any deployment whose instance storage is shared
(SQLite for `dagster dev`, PostgreSQL in production) shares the state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
)

from bizon_core.errors import StateError
from bizon_core.secrets import seal, unseal
from bizon_core.source.config import SourceSyncModes
from bizon_core.sync.state import Checkpoint, StreamKey, SuccessfulRun
from bizon_dagster.slot import stream_slot

LAST_RUN = "bizon/last_run"
CHECKPOINT = "bizon/checkpoint"
#: An observation that hides the checkpoints before it from `resume_point`.
DISCARDED = "bizon/checkpoint_discarded"
#: The run tag that, set to `false`, makes a run start over instead of resuming.
RESUME_TAG = "bizon/resume"
#: The run tag that, set to `true`, makes a run ignore the cursor: it fetches everything
#: (and starts over), and its materialization records the cursor from then on.
FULL_REFRESH_TAG = "bizon/full_refresh"


def success_metadata(run: SuccessfulRun) -> dict[str, Any]:
    """The materialization metadata that holds a stream's cursor."""
    return {
        LAST_RUN: run.started_at.isoformat(),
        "bizon/run_id": run.run_id,
        "bizon/sync_mode": run.sync_mode.value,
        "bizon/cursor_field": run.cursor_field or "",
        "bizon/state": MetadataValue.json(run.state),
    }


def read_success(instance: DagsterInstance, asset_key: AssetKey) -> SuccessfulRun | None:
    """The cursor from the asset's latest materialization, if bizon wrote it."""
    event = instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if LAST_RUN not in metadata:
        return None
    return SuccessfulRun(
        run_id=_value(metadata, "bizon/run_id", ""),
        started_at=datetime.fromisoformat(_value(metadata, LAST_RUN)),
        finished_at=datetime.fromtimestamp(event.timestamp, UTC),
        sync_mode=SourceSyncModes(_value(metadata, "bizon/sync_mode", "full_refresh")),
        records=int(_value(metadata, "bizon/records", 0)),
        pages=int(_value(metadata, "bizon/pages", 0)),
        cursor_field=_value(metadata, "bizon/cursor_field", "") or None,
        state=_value(metadata, "bizon/state", {}) or {},
    )


class DagsterStateStore:
    """The `StateStore` of one asset's stream, inside a running asset step."""

    def __init__(
        self,
        context: AssetExecutionContext,
        asset_key: AssetKey,
        checkpoint_interval: float = 0,
        ignore_cursor: bool = False,
        partition: str | None = None,
    ):
        self.context = context
        #: The time partition synced: its checkpoints are its own, and it has no cursor.
        self.partition = partition
        #: Set by the `bizon/full_refresh` tag: `last_success` is then None.
        self.ignore_cursor = ignore_cursor
        self.instance = context.instance
        self.asset_key = asset_key
        #: Each observation is an event log write: the runner records an intermediate
        #: one at most this often (never throttling the failure or pre-commit ones).
        self.checkpoint_interval = checkpoint_interval
        self._held = False

    def last_success(self, key: StreamKey) -> SuccessfulRun | None:
        if self.ignore_cursor or self.partition is not None:
            return None
        return read_success(self.instance, self.asset_key)

    def resume_point(self, key: StreamKey) -> Checkpoint | None:
        records = self.instance.fetch_observations(self._records(), limit=1).records
        if not records:
            return None
        entry = records[0].event_log_entry
        observation = entry.asset_observation
        if observation is None or CHECKPOINT not in observation.metadata:
            return None  # none, or discarded (`discard_checkpoint`)
        latest = self.instance.fetch_materializations(self._records(), limit=1).records
        if latest and latest[0].event_log_entry.timestamp >= entry.timestamp:
            return None  # the checkpoint's run, or a later one, has committed since
        data = observation.metadata[CHECKPOINT].value
        try:
            pagination, destination = unseal(data["pagination"]), unseal(data["destination"])
        except StateError as exc:
            raise StateError(
                f"stream {key}: {exc}; start a run with the tag {RESUME_TAG}=false to discard it"
            ) from None
        return Checkpoint(
            run_id=data["run_id"],
            started_at=datetime.fromisoformat(data["started_at"]),
            sync_mode=SourceSyncModes(data["sync_mode"]),
            pagination=pagination,
            records=data["records"],
            pages=data["pages"],
            destination=destination,
            source_last_run=(
                datetime.fromisoformat(data["source_last_run"]) if data["source_last_run"] else None
            ),
            created_at=datetime.fromtimestamp(entry.timestamp, UTC),
            state=data.get("state") or {},
        )

    def _records(self) -> AssetKey | AssetRecordsFilter:
        """The asset's events, or its partition's."""
        if self.partition is None:
            return self.asset_key
        return AssetRecordsFilter(asset_key=self.asset_key, asset_partitions=[self.partition])

    @contextmanager
    def lock(self, key: StreamKey) -> Iterator[None]:
        """Hold the stream's slot; inside `hold(key)` it is already held, so nothing to do."""
        if self._held:
            yield
            return
        with self.hold(key):
            yield

    @contextmanager
    def hold(self, key: StreamKey) -> Iterator[None]:
        """Hold the stream's slot for longer than the runner does: the asset holds it until
        the materialization that moves the cursor is stored, so that no other run starts
        between the destination's commit and the cursor's, and a run killed there is
        found dead by the next one."""
        slot = f"bizon/{key}"
        with stream_slot(
            self.instance, slot, self.context.run.run_id, self.asset_key, self.context.log
        ):
            self._held = True
            try:
                yield
            finally:
                self._held = False

    def checkpoint(self, key: StreamKey, checkpoint: Checkpoint) -> None:
        data = {
            "run_id": checkpoint.run_id,
            "started_at": checkpoint.started_at.isoformat(),
            "sync_mode": checkpoint.sync_mode.value,
            # Exact, but with references in place of secrets: the event log shows no secret.
            "pagination": seal(checkpoint.pagination),
            "records": checkpoint.records,
            "pages": checkpoint.pages,
            "destination": seal(checkpoint.destination),
            "state": checkpoint.state,
            "source_last_run": (
                checkpoint.source_last_run.isoformat() if checkpoint.source_last_run else None
            ),
        }
        self.context.log_event(
            AssetObservation(
                asset_key=self.asset_key,
                partition=self.partition,
                metadata={
                    CHECKPOINT: MetadataValue.json(data),
                    # Keys of their own: `bizon/records` plots the committed syncs only.
                    "bizon/checkpoint_records": checkpoint.records,
                    "bizon/checkpoint_pages": checkpoint.pages,
                },
            )
        )

    def commit(self, key: StreamKey, run: SuccessfulRun) -> None:
        """Nothing to write here: the asset yields the `MaterializeResult` that records
        `run` (see `success_metadata`) once the runner returns."""

    def discard_checkpoint(self) -> None:
        """Make the stream's checkpoints so far invisible to `resume_point`: the stream
        starts over, and a retry resumes only from checkpoints recorded after this."""
        self.context.log_event(
            AssetObservation(
                asset_key=self.asset_key,
                partition=self.partition,
                metadata={DISCARDED: MetadataValue.text(f"by run {self.context.run.run_id}")},
            )
        )


def _value(metadata: dict[str, Any], key: str, default: Any = None) -> Any:
    entry = metadata.get(key)
    return default if entry is None else entry.value
