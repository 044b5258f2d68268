"""What SQL destinations share: names, write dispositions, column types and their widening.

Every SQL destination loads a run the same way, so that data and cursor always agree:

1. `begin(resume)`: take the table's load lock (a second load into the same table fails
   at once); create the staging table `_bizon_stage_<table>`, or, when resuming the same
   run, delete its batches after the marker's.
2. `write(records)`: buffer; every `batch_size` records, one transaction appends the
   buffer to staging (bulk path, typed columns, new columns added); once it has
   committed, `write` returns the marker `{"run_id", "batch"}`: only then may the runner
   record the checkpoint. A destination that writes batches in the background (DuckDB)
   returns `DurableUpTo(writes, marker)`, naming the last page the batch holds.
3. `commit()`: one transaction moves staging into the table - replace (swap), merge
   (upsert by record id, the last version of a record wins) or append - and records the
   run in `_bizon_loads`; a commit of a run already recorded there does nothing, so a
   crash between this commit and the cursor's is harmless.
4. `finalize(success)`: release the lock; staging is kept after a failure, for resuming.

A crash anywhere leaves the table as it was before `commit()`, or as it is after it.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import AbstractDestination, DurableUpTo, WriteContext
from bizon_core.errors import DestinationError
from bizon_core.secrets import redact
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord

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

    # Each database declares `schema_name` (alias `schema`) with its own default.
    @field_validator("schema_name", check_fields=False)
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        return check_identifier(value, "schema")

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


class StagedSqlDestination(AbstractDestination):
    """The load protocol above, for a SQL database; a subclass adds the database.

    It keeps the run's batches and markers, turns driver errors into one-line
    `DestinationError`s naming the table, and leaves to the subclass: buffering records
    (`_buffer`), writing a batch to staging (`_write_batch`, which sets
    `self._batch`), the commit transaction (`_commit_load`) and the table's description
    (`_describe_table`).
    """

    #: The destination's name, for messages.
    name: ClassVar[str]
    #: The driver's errors, reported by `_errors` as `DestinationError`s.
    driver_errors: ClassVar[tuple[type[BaseException], ...]]
    #: The staging table's name, set by the subclass.
    stage: str

    def __init__(self, config: SqlDestinationConfig, context: WriteContext, schema: str):
        super().__init__(config, context)
        self.config: SqlDestinationConfig = config
        self.schema = schema
        self.qualified = f"{schema}.{config.table or context.stream}"
        try:
            self.table = table_name_for(context.stream, config.table)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        self.qualified = f"{schema}.{self.table}"
        self.disposition = WriteDisposition.for_sync_mode(
            context.sync_mode, config.write_disposition
        )
        #: The run was committed before a stop: nothing is written or committed again.
        self._already_committed = False
        #: Calls of `write()` in this attempt.
        self._writes = 0
        #: The last batch durable in staging, the last one cut from the buffer, the last
        #: one whose marker was returned, and after which write each cut batch ends.
        self._batch = self._cut = self._reported = 0
        #: Records buffered for the next batch.
        self._buffered = 0
        self._cut_at: dict[int, int] = {}
        self._description: dict[str, Any] | None = None

    def write(self, records: Sequence[SourceRecord]) -> dict[str, Any] | DurableUpTo | None:
        if self._already_committed:
            return None
        self._writes += 1
        if records:
            self._buffer(records)
            self._buffered += len(records)
        if self._buffered >= self.config.batch_size:
            self._cut_batch()
        self._collect_batches(wait=False)
        return self._newly_durable()

    def flush(self) -> dict[str, Any] | None:
        if self._already_committed or not self._connected():
            return None
        self._write_rest()
        self._reported = self._batch
        # Even with nothing left to write: the runner records this run id before commit().
        return self._marker()

    def commit(self) -> None:
        if not self._already_committed:
            self._write_rest()
            with self._errors("cannot commit the load"):
                self._commit_load()
        if self._description is None:
            with self._errors("cannot describe the table"):
                self._description = self._describe_table()

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"table_name": f"{self._database_label()}.{self.qualified}"}
        if self._description is not None:
            described.update(self._description)
        return described

    def _open_stage(self, resume: dict[str, Any] | None) -> None:
        """Create staging for a new run, or keep the batches a failed attempt staged.

        A run already recorded in `_bizon_loads` committed, then stopped before its
        cursor moved: nothing is written or committed again.
        """
        if resume is None:
            self._create_stage()
            return
        batch = resume.get("batch")
        if resume.get("run_id") != self.context.run_id or not isinstance(batch, int):
            raise self._error(
                f"cannot resume run {self.context.run_id}: its checkpoint was not written "
                "by this destination; run again without resuming (--no-resume)"
            )
        if self._run_recorded():
            self._already_committed = True
            return
        columns = self._table_columns(self.stage)
        if columns is None:
            raise self._cannot_resume("it is missing")
        if not self._stage_holds(batch):
            raise self._cannot_resume(f"it does not hold this run's batches up to {batch}")
        self._resume_stage(batch, columns)

    def _cannot_resume(self, why: str) -> DestinationError:
        return self._error(
            f"cannot resume from the staging table {self.schema}.{self.stage}: {why};"
            " run again without resuming (--no-resume)"
        )

    def _marker(self) -> dict[str, Any]:
        return {"run_id": self.context.run_id, "batch": self._batch}

    def _resumed_at(self, batch: int) -> None:
        """Staging holds this run's batches up to `batch`, durable: the next one follows."""
        self._batch = self._cut = self._reported = batch

    def _cut_batch(self) -> None:
        """Make the buffered records the next batch and start writing it."""
        self._cut += 1
        self._cut_at[self._cut] = self._writes
        self._write_batch(self._cut)
        self._buffered = 0

    def _write_rest(self) -> None:
        """Write what is buffered and wait until every batch is durable."""
        if self._buffered:
            self._cut_batch()
        self._collect_batches(wait=True)

    def _newly_durable(self) -> dict[str, Any] | DurableUpTo | None:
        """The marker of batches made durable since the last one returned, if any."""
        if self._batch == self._reported:
            return None
        writes = self._cut_at[self._batch]
        for batch in [b for b in self._cut_at if b <= self._batch]:
            del self._cut_at[batch]
        self._reported = self._batch
        if writes == self._writes:
            return self._marker()
        return DurableUpTo(writes, self._marker())

    def _error(self, message: str, exc: BaseException | None = None) -> DestinationError:
        """A one-line error naming the destination and the table; secrets masked."""
        if exc is not None:
            message = f"{message}: {self._explain(exc)}"
        text = " ".join(f"destination '{self.name}' table {self.qualified}: {message}".split())
        return DestinationError(redact(text))

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self.driver_errors as exc:
            raise self._error(what, exc) from exc

    def _explain(self, exc: BaseException) -> str:
        """An error's message on one line."""
        return " ".join((str(exc) or type(exc).__name__).split())

    @abstractmethod
    def _database_label(self) -> str:
        """The database's name, the first part of `table_name`."""

    @abstractmethod
    def _connected(self) -> bool:
        """Whether `begin()` opened the connection (and it is still open)."""

    @abstractmethod
    def _buffer(self, records: Sequence[SourceRecord]) -> None:
        """Keep a page of records for the next batch."""

    @abstractmethod
    def _create_stage(self) -> None:
        """Create an empty staging table, in place of any left by another run."""

    @abstractmethod
    def _run_recorded(self) -> bool:
        """Whether `_bizon_loads` records this run as committed into the table."""

    @abstractmethod
    def _table_columns(self, name: str) -> dict[str, ColumnType | None] | None:
        """A table's columns, name -> type (None: a type bizon does not write), or None."""

    @abstractmethod
    def _stage_holds(self, batch: int) -> bool:
        """Whether staging holds only this run's rows, batch `batch` among them (if > 0)."""

    @abstractmethod
    def _resume_stage(self, batch: int, columns: dict[str, ColumnType | None]) -> None:
        """Delete the batches after `batch` from staging (of `columns`); resume after it."""

    @abstractmethod
    def _write_batch(self, batch: int) -> None:
        """Write the kept records to staging as `batch`, in one transaction.

        When it returns, the batch is durable and `self._batch` is `batch`; or, for a
        destination that `writes_in_background`, the batch is on its way and
        `_collect_batches` sets `self._batch` once it is durable.
        """

    def _collect_batches(self, wait: bool) -> None:
        """Take note of the batches written in the background (all of them, if `wait`)."""

    @abstractmethod
    def _commit_load(self) -> None:
        """Move staging into the table and record the run, in one transaction."""

    @abstractmethod
    def _describe_table(self) -> dict[str, Any]:
        """`columns` and `row_count` of the committed table."""
