"""Incremental helpers: compare a record's cursor value with `last_run` as instants.

Cursor values come as ISO-8601 strings with any offset (`+02:00`, `-05:00`, `Z`; naive
means UTC), as epoch numbers (seconds, or milliseconds from 1e11 on), or as `datetime`s.
Comparing them as strings loses records: `2026-03-10T13:00:00-05:00` is three hours
*after* `2026-03-10T15:00:00+00:00`. A source that filters client-side::

    from bizon_core import records_after

    def get_records_after(self, source_state, pagination=None):
        page = self.get(pagination)
        return SourceIteration(
            records=records_after(page.records, source_state),
            next_pagination=page.next_pagination,
        )
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bizon_core.errors import RecordError
from bizon_core.source.models import SourceIncrementalState, SourceRecord
from bizon_core.source.pagination import MISSING, json_path

logger = logging.getLogger(__name__)

#: Epoch numbers from this one on are milliseconds (as seconds, it is the year 5138).
EPOCH_MILLISECONDS_FROM = 100_000_000_000


def cursor_instant(
    value: Any, *, record_id: str | None = None, field: str | None = None
) -> datetime:
    """The instant (timezone-aware, UTC) a cursor value stands for.

    Raises `RecordError` naming the record and field when `value` is none of an ISO-8601
    string, an epoch number or a `datetime`.
    """
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) >= EPOCH_MILLISECONDS_FROM else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    elif isinstance(value, str):
        try:
            return _utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    where = f"record {record_id}" if record_id is not None else "a record"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise RecordError(
        f"{where}: cursor field '{field or '?'}' holds {shown}, which is neither an ISO-8601 "
        "time nor an epoch number"
    )


def cursor_value(data: dict[str, Any], field: str) -> Any:
    """The record's value of `field`, a dotted path into nested objects (`commit.author.date`)
    when no top-level field has that name; None when it has none."""
    value = data.get(field)
    if value is None and "." in field:
        value = json_path(data, field)
        return None if value is MISSING else value
    return value


def is_after(
    value: Any, last_run: datetime, *, record_id: str | None = None, field: str | None = None
) -> bool:
    """Whether the cursor `value` is strictly later than `last_run` (naive means UTC)."""
    return cursor_instant(value, record_id=record_id, field=field) > _utc(last_run)


def records_after(
    records: Iterable[SourceRecord], source_state: SourceIncrementalState
) -> list[SourceRecord]:
    """The records whose `source_state.cursor_field` is later than `source_state.last_run`.

    A record without a cursor value is kept (when it changed is unknown), and so is every
    record when the stream has no `cursor_field`: an incremental run then loads a record
    again rather than lose it, which a merge into the destination makes harmless.
    """
    field = source_state.cursor_field
    if field is None:
        return list(records)
    last_run = _utc(source_state.last_run)
    kept = []
    for record in records:
        value = cursor_value(record.data, field)
        if value is None or cursor_instant(value, record_id=record.id, field=field) > last_run:
            kept.append(record)
    return kept


def records_between(
    records: Iterable[SourceRecord], cursor_field: str | None, start: datetime, end: datetime
) -> list[SourceRecord]:
    """The records whose `cursor_field` is in `[start, end)` (a time partition's window).

    Unlike `records_after`, a record without a cursor value is dropped: it belongs to no
    window, and keeping it would load it into every partition.
    """
    if cursor_field is None:
        raise RecordError("a time partition needs source.cursor_field to place each record")
    start, end = _utc(start), _utc(end)
    kept = []
    for record in records:
        value = cursor_value(record.data, cursor_field)
        if value is not None:
            instant = cursor_instant(value, record_id=record.id, field=cursor_field)
            if start <= instant < end:
                kept.append(record)
    return kept


class HighestCursor:
    """The highest cursor value of the records a run fetched, kept in the stream's state.

    A value that is not a time ends the tracking with one warning: the run itself does not
    depend on it.
    """

    def __init__(self, field: str | None, label: str):
        self.field = field
        self.label = label
        self.highest: datetime | None = None

    def update(self, records: Iterable[SourceRecord]) -> None:
        """Take the records of one page into account."""
        field = self.field
        if field is None:
            return
        highest, parse = self.highest, datetime.fromisoformat
        try:
            for record in records:
                value = cursor_value(record.data, field)
                if value is None:
                    continue
                try:  # the common case inline: this runs for every record
                    instant = parse(value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    instant = cursor_instant(value, record_id=record.id, field=field)
                if instant.tzinfo is None:
                    instant = instant.replace(tzinfo=UTC)
                if highest is None or instant > highest:
                    highest = instant
        except RecordError as exc:
            logger.warning("%s: %s; the highest cursor value is not recorded", self.label, exc)
            self.field, highest = None, None
        self.highest = highest

    def resume(self, state: dict[str, Any]) -> None:
        """Start from the highest value of the pages a resumed run already wrote."""
        value = state.get("max_cursor")
        if value is not None and self.field is not None:
            self.highest = datetime.fromisoformat(value)

    def state(self) -> dict[str, Any]:
        """`{"max_cursor": <ISO-8601 in UTC>}`, or `{}` when nothing was tracked."""
        if self.highest is None:
            return {}
        return {"max_cursor": self.highest.astimezone(UTC).isoformat()}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
