"""What the new-data sensor asks each stream's source, and what its cursor remembers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from bizon_core.config import Pipeline
from bizon_core.secrets import redact
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceIncrementalState
from bizon_core.source.source import AbstractSource
from bizon_core.sync.state import SuccessfulRun


@dataclass(frozen=True)
class Probe:
    """One stream's answer: a change to sync, a probe value to compare, or a problem."""

    change: str | None = None  # a change seen by the source itself, as a run key part
    value: str | None = None  # the source's `probe()` answer
    problem: str | None = None


def probe_stream(pipeline: Pipeline, stream: str, last: SuccessfulRun | None) -> Probe:
    """Ask the stream's source whether it has data the last sync (`last`) did not see.

    An incremental stream already synced fetches the first page of records changed after
    `last.started_at` (one request): records there are a change. Otherwise, or when that
    page is empty but not the last one, the answer is the source's `probe()`. A failure is
    a `problem`, never an exception: one stream's probe does not stop the others.
    """
    config = pipeline.source_configs[stream]
    source: AbstractSource | None = None
    try:
        source = pipeline.source_class(config)
        if (
            last is not None
            and config.sync_mode is SourceSyncModes.INCREMENTAL
            and source.supports_incremental()
        ):
            state = SourceIncrementalState(
                last_run=last.started_at, cursor_field=config.cursor_field
            )
            page = source.get_records_after(state, None)
            if page.records:
                return Probe(change=f"changed_after:{last.started_at.isoformat()}")
            if not page.next_pagination:
                return Probe()
        value = source.probe()
    except Exception as exc:  # a failed probe skips this evaluation, it does not fail the sensor
        return Probe(problem=redact(f"{stream}: probe failed: {type(exc).__name__}: {exc}"))
    finally:
        if source is not None:
            source.close()
    if value is None:
        return Probe(problem=f"{stream}: the source has no probe (get_total_records_count is None)")
    return Probe(value=str(value))


class SensorCursor:
    """The sensor's cursor: each stream's last probe answer and how many changes it saw.

    A run key is `<epoch>:<changes>:<answer>`: unique per change (an answer coming back to
    one seen before is a new change), the same when a tick is evaluated again from the same
    cursor, and new after a cursor reset (a new epoch).
    """

    def __init__(self, epoch: str, streams: dict[str, dict[str, Any]]):
        self.epoch = epoch
        self.streams = streams

    @classmethod
    def load(cls, text: str | None) -> SensorCursor:
        data = orjson.loads(text) if text else {}
        if "epoch" not in data:  # none yet, or the older {stream: answer}
            streams = {stream: {"value": value, "changes": 0} for stream, value in data.items()}
            return cls(uuid.uuid4().hex[:12], streams)
        return cls(data["epoch"], data["streams"])

    def observe(self, stream: str, value: str | None) -> str | None:
        """Record the stream's answer; the run key part of a change, None if none."""
        if value is None:
            return None
        seen = self.streams.get(stream)
        if seen is None:
            self.streams[stream] = {"value": value, "changes": 0}
            return None
        if seen["value"] == value:
            return None
        changes = int(seen["changes"]) + 1
        self.streams[stream] = {"value": value, "changes": changes}
        return f"{self.epoch}:{changes}:{value}"

    def dump(self) -> str:
        data = {"epoch": self.epoch, "streams": self.streams}
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
