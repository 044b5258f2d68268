"""What SQL destinations share: names, write dispositions, column types and their widening.

The load itself, shared by every SQL destination, is `bizon_core.destination.sql_load`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from bizon_core.destination.config import DestinationConfig
from bizon_core.source.config import SourceSyncModes

#: Columns every loaded row carries, before the record's own fields.
ID_COLUMN = "_bizon_id"
EXTRACTED_AT_COLUMN = "_bizon_extracted_at"
LOADED_AT_COLUMN = "_bizon_loaded_at"
RUN_ID_COLUMN = "_bizon_run_id"
BOOKKEEPING_COLUMNS = (ID_COLUMN, EXTRACTED_AT_COLUMN, LOADED_AT_COLUMN, RUN_ID_COLUMN)
#: Staging-only column: the batch a row was written in, for resuming.
BATCH_COLUMN = "_bizon_batch"
#: Staging-only column: the position of a row in the run, so that the last version of a
#: record written twice is known without relying on physical order.
ROW_COLUMN = "_bizon_row"
#: The staging table of a table is this prefix and its name.
STAGE_PREFIX = "_bizon_stage_"
LOADS_TABLE = "_bizon_loads"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: What `value_type` takes for a timestamp (then checked against the calendar): ISO 8601
#: with a time, in ranges Python and the databases agree on; for `re.fullmatch` and SQL.
ISO_TIMESTAMP_PATTERN = (
    r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
)
_ISO_DATETIME = re.compile(ISO_TIMESTAMP_PATTERN)


class WriteDisposition(StrEnum):
    """How a run's records reach the table."""

    REPLACE = "replace"  # the table becomes exactly this run's records
    MERGE = "merge"  # upsert by record id
    APPEND = "append"  # add every record, for event-style streams
    #: Replace the rows of the run's time partition; chosen for a partitioned pipeline.
    PARTITION = "partition"

    @classmethod
    def for_sync_mode(
        cls,
        mode: SourceSyncModes,
        configured: WriteDisposition | None,
        partition: str | None = None,
    ) -> WriteDisposition:
        """`partition` for a time partition's run, else the configured disposition, else
        replace for full refresh and merge for incremental."""
        if partition is not None:
            return cls.PARTITION
        if configured is not None:
            return configured
        return cls.REPLACE if mode == SourceSyncModes.FULL_REFRESH else cls.MERGE


class ColumnType(StrEnum):
    """Database-neutral column types; each destination maps them to its own."""

    BOOLEAN = "boolean"
    BIGINT = "bigint"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"
    TEXT = "text"
    JSON = "json"


class SqlDestinationConfig(DestinationConfig):
    """Settings shared by SQL destinations."""

    table: str | None = Field(default=None, description="Table name; default: the stream's.")
    write_disposition: WriteDisposition | None = Field(
        default=None,
        description="replace, merge or append; default: replace for full refresh, "
        "merge for incremental (a partitioned pipeline replaces each partition's rows).",
    )
    batch_size: int = Field(
        default=50_000, gt=0, description="Records per staging write (each one a checkpoint)."
    )

    # Each database declares `schema_name` (alias `schema`) with its own default.
    @field_validator("schema_name", check_fields=False)
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        return check_identifier(value, "schema")

    @field_validator("write_disposition")
    @classmethod
    def _not_partition(cls, value: WriteDisposition | None) -> WriteDisposition | None:
        if value is WriteDisposition.PARTITION:
            raise ValueError("partition is chosen by a partitioned pipeline (partitions:)")
        return value

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("_bizon_"):
            raise ValueError(f"table {value!r}: names starting with _bizon_ are bizon's own")
        return None if value is None else check_identifier(value, "table")


def check_identifier(name: str, what: str) -> str:
    """`name` if it is a plain SQL identifier (letters, digits, _; 63 at most), else ValueError."""
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid identifier: use letters, digits and _, "
            "not starting with a digit, 63 characters at most"
        )
    return name


def table_name_for(stream: str, configured: str | None) -> str:
    """The table of a stream: the configured name, else the stream's name made an identifier."""
    if configured is not None:
        return configured
    name = re.sub(r"[^A-Za-z0-9_]", "_", stream)
    return check_identifier(name if not name[0].isdigit() else f"_{name}", "table")


def value_type(value: Any) -> ColumnType | None:
    """The narrowest column type that holds `value`; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.BIGINT if -(2**63) <= value < 2**63 else ColumnType.TEXT
    if isinstance(value, float):
        return ColumnType.DOUBLE
    if isinstance(value, str):
        return ColumnType.TIMESTAMP if _is_timestamp(value) else ColumnType.TEXT
    if isinstance(value, datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, dict | list | tuple | set | frozenset):
        return ColumnType.JSON
    return value_type(str(value))  # other objects are written as their text


def widen(current: ColumnType | None, new: ColumnType | None) -> ColumnType | None:
    """A type that holds values of both: numbers widen to double, nested to JSON, else text."""
    if current is None or current == new:
        return new if current is None else current
    if new is None:
        return current
    if {current, new} == {ColumnType.BIGINT, ColumnType.DOUBLE}:
        return ColumnType.DOUBLE
    if ColumnType.JSON in (current, new):
        return ColumnType.JSON
    return ColumnType.TEXT


BOOKKEEPING_TYPES: dict[str, ColumnType | None] = {
    ID_COLUMN: ColumnType.TEXT,
    EXTRACTED_AT_COLUMN: ColumnType.TIMESTAMP,
    LOADED_AT_COLUMN: ColumnType.TIMESTAMP,
    RUN_ID_COLUMN: ColumnType.TEXT,
}

_DIGITS = bytes.maketrans(b"123456789", b"000000000")
#: The shapes `value_type` takes for a timestamp, each digit written 0 (ASCII only).
_TIMESTAMP_SHAPES = frozenset(
    f"0000-00-00{separator}00:00{seconds}{zone}".encode()
    for separator in "T "
    for seconds in ["", ":00", *(":00." + "0" * n for n in range(1, 10))]
    for zone in ["", "Z", "+00:00", "+0000", "-00:00", "-0000"]
)


def all_timestamps(texts: list[str]) -> bool:
    """`value_type(t) is TIMESTAMP` for every text: whole columns at once for common shapes.

    A column of timestamps is checked with one translate and one set test instead of a
    regular expression per value; the calendar is still checked value by value.
    """
    joined = "\n".join(texts)
    if joined.isascii():
        shapes = joined.encode().translate(_DIGITS).split(b"\n")
        if len(shapes) == len(texts) and set(shapes) <= _TIMESTAMP_SHAPES:
            if "Z" in joined:
                texts = [text.replace("Z", "+00:00") for text in texts]
            try:
                for text in texts:
                    datetime.fromisoformat(text)
            except ValueError:
                return False
            return True
    return all(value_type(text) is ColumnType.TIMESTAMP for text in texts)


def infer_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, ColumnType | None]:
    """Column types of the rows' top-level fields, in order of first appearance.

    A field that is null in every row has no type yet (None): a later value decides it.
    """
    types: dict[str, ColumnType | None] = {}
    for row in rows:
        for name, value in row.items():
            if name in types:
                if value is not None:
                    current = types[name]
                    new = value_type(value)
                    if current != new:
                        types[name] = widen(current, new)
            else:
                types[name] = value_type(value)
    return types


def _is_timestamp(value: str) -> bool:
    if not _ISO_DATETIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
