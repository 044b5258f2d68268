"""What SQL destinations share: names, write dispositions, column types and their widening.

Every SQL destination loads a run the same way, so that data and cursor always agree:

1. `begin(resume)`: take the table's load lock (a second load into the same table fails
   at once); create the staging table `_bizon_stage_<table>`, or, when resuming the same
   run, delete its batches after the marker's.
2. `write(records)`: buffer; every `batch_size` records, one transaction appends the
   buffer to staging (bulk path, typed columns, new columns added) and returns the marker
   `{"run_id", "batch"}`: only then may the runner record the checkpoint.
3. `commit()`: one transaction moves staging into the table - replace (swap), merge
   (upsert by record id, the last version of a record wins) or append - and records the
   run in `_bizon_loads`; a commit of a run already recorded there does nothing, so a
   crash between this commit and the cursor's is harmless.
4. `finalize(success)`: release the lock; staging is kept after a failure, for resuming.

A crash anywhere leaves the table as it was before `commit()`, or as it is after it.
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
LOADS_TABLE = "_bizon_loads"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
)


class WriteDisposition(StrEnum):
    """How a run's records reach the table."""

    REPLACE = "replace"  # the table becomes exactly this run's records
    MERGE = "merge"  # upsert by record id
    APPEND = "append"  # add every record, for event-style streams

    @classmethod
    def for_sync_mode(
        cls, mode: SourceSyncModes, configured: WriteDisposition | None
    ) -> WriteDisposition:
        """The configured disposition, else replace for full refresh and merge for incremental."""
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
        "merge for incremental.",
    )
    batch_size: int = Field(
        default=50_000, gt=0, description="Records per staging write (each one a checkpoint)."
    )

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
    return ColumnType.JSON


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


def infer_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, ColumnType]:
    """Column types of the rows' top-level fields, in order of first appearance.

    A field that is null in every row is typed TEXT.
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
    return {name: kind or ColumnType.TEXT for name, kind in types.items()}


def _is_timestamp(value: str) -> bool:
    if not _ISO_DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
