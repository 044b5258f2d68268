"""The staged load every SQL destination runs, once, over a `SqlDialect`.

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
The database adds its connection, lock and bulk path, and its `SqlDialect`.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from bizon_core.destination.destination import (
    AbstractDestination,
    DurableUpTo,
    TableReport,
    WriteContext,
)
from bizon_core.destination.sql import (
    BATCH_COLUMN,
    BOOKKEEPING_TYPES,
    ID_COLUMN,
    LOADED_AT_COLUMN,
    LOADS_TABLE,
    ROW_COLUMN,
    RUN_ID_COLUMN,
    STAGE_PREFIX,
    ColumnType,
    SqlDestinationConfig,
    WriteDisposition,
    table_name_for,
    widen,
)
from bizon_core.destination.sql_dialect import ColumnNames, SqlDialect, reserved_column
from bizon_core.errors import DestinationError
from bizon_core.secrets import redact
from bizon_core.source.models import SourceRecord
from bizon_core.sync.state import PARTITION_FIELD

#: Every table bizon keeps for itself starts so; a stream's table cannot.
BIZON_PREFIX = "_bizon_"
#: The index a merge deletes through, on `_bizon_id`, is this prefix and the table's name.
INDEX_PREFIX = "_bizon_idx_"


class StagedSqlDestination(AbstractDestination):
    """The load protocol above, for a SQL database; a subclass adds the database.

    It runs every step of the load through `self.sql`, the database's `SqlDialect`,
    and turns driver errors into one-line `DestinationError`s naming the table. The
    subclass opens the connection and the dialect, takes the load lock, then calls
    `_prepare(resume)`; it buffers records (`_buffer`) and writes a batch to staging
    (`_write_batch`, which sets `self._batch`), usually through `_evolve_stage`.
    """

    replaces_partitions: ClassVar[bool] = True

    #: The destination's name, for messages.
    name: ClassVar[str]
    #: The driver's errors, reported by `_errors` as `DestinationError`s.
    driver_errors: ClassVar[tuple[type[BaseException], ...]]
    #: The database's SQL, on the open connection; set by the subclass's `begin()`.
    sql: SqlDialect

    def __init__(
        self,
        config: SqlDestinationConfig,
        context: WriteContext,
        schema: str,
        dialect: type[SqlDialect],
    ):
        super().__init__(config, context)
        self.config: SqlDestinationConfig = config
        self.schema = schema
        self.qualified = f"{schema}.{config.table or context.stream}"
        try:
            self.table = table_name_for(context.stream, config.table)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        self.qualified = f"{schema}.{self.table}"
        self._dialect = dialect
        if self._dialect.fold(self.table).startswith(BIZON_PREFIX):
            raise self._error("the table name is one bizon uses for its own tables")
        # A partition's run stages apart: another partition's run must not take its rows.
        partition = re.sub(r"[^0-9A-Za-z]", "", context.partition or "")
        self.stage = self._derived_name(
            f"{STAGE_PREFIX}{partition}_" if partition else STAGE_PREFIX
        )
        self.disposition = WriteDisposition.for_sync_mode(
            context.sync_mode, config.write_disposition, context.partition
        )
        #: The run was committed before a stop: nothing is written or committed again.
        self._already_committed = False
        #: Calls of `write()` in this attempt.
        self._writes = 0
        #: The last batch durable in staging, the last one cut from the buffer, the last
        #: one whose marker was returned, and after which write each cut batch ends.
        self._batch = self._cut = self._reported = 0
        #: Records buffered for the next batch; rows of the run so far (staging's
        #: `_bizon_row` of the next record).
        self._buffered = self._rows = 0
        self._cut_at: dict[int, int] = {}
        self._description: dict[str, Any] | None = None
        #: Record columns of staging as committed: name -> type; None while every value
        #: seen is null (the column is text until a value comes).
        self._staged: dict[str, ColumnType | None] = {}
        self._names = ColumnNames(dialect.name_for, dialect.fold)

    # The protocol ---------------------------------------------------------------------

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

    def existing_columns(self) -> list[tuple[str, str]] | None:
        with self._reading() as sql:
            return (sql.columns(self.schema, self.table) or None) if sql is not None else None

    def table_report(self) -> TableReport | None:
        with self._reading() as sql:
            if sql is None or not sql.relation_kind(self.schema, self.table):
                return None
            columns = sql.columns(self.schema, self.table)
            ids, name = sql.quote(ID_COLUMN), f"{sql.quote(self.schema)}.{sql.quote(self.table)}"
            # An id is unique within its time partition, in a partitioned table.
            key = ids
            if any(column == PARTITION_FIELD for column, _ in columns):
                key = f"{sql.quote(PARTITION_FIELD)}, {ids}"
            rows, nulls = sql.execute(f"SELECT count(*), count(*) - count({ids}) FROM {name}")[0]
            [(distinct,)] = sql.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {name}"
                f" WHERE {ids} IS NOT NULL) AS keys"
            )
        append = self.disposition is WriteDisposition.APPEND
        return TableReport(rows, nulls, rows - nulls - distinct, columns, append)

    @contextmanager
    def _reading(self) -> Iterator[SqlDialect | None]:
        """A short read-only session on the database, or None when it cannot be had
        cheaply (a file that does not exist, a database that does not answer)."""
        yield None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"table_name": f"{self._database_label()}.{self.qualified}"}
        if self._description is not None:
            described.update(self._description)
        return described

    # Names ----------------------------------------------------------------------------

    def _derived_name(self, prefix: str) -> str:
        """`prefix + table`, shortened with a hash if the database would cut it."""
        return self._dialect.derived_name(prefix, self.table)

    def _name(self, table: str) -> str:
        """A table of the schema, quoted."""
        return f"{self.sql.quote(self.schema)}.{self.sql.quote(table)}"

    # Preparing ------------------------------------------------------------------------

    def _prepare(self, resume: dict[str, Any] | None) -> None:
        """Once connected and locked: the loads table, the table's names, staging."""
        self._ensure_loads_table()
        self._names.add_existing(self._table_columns(self.table) or {})
        self._open_stage(resume)

    def _ensure_loads_table(self) -> None:
        text, timestamp, bigint = (
            self.sql.types[kind]
            for kind in (ColumnType.TEXT, ColumnType.TIMESTAMP, ColumnType.BIGINT)
        )
        with self.sql.transaction():
            # Two first loads into one schema would race on CREATE TABLE IF NOT EXISTS.
            self.sql.serialize(f"{self.schema}.{LOADS_TABLE}")
            self.sql.execute(
                f"CREATE TABLE IF NOT EXISTS {self._name(LOADS_TABLE)} ("
                f'"schema" {text} NOT NULL, "table" {text} NOT NULL, run_id {text} NOT NULL,'
                f' committed_at {timestamp} NOT NULL, "rows" {bigint} NOT NULL,'
                ' PRIMARY KEY ("schema", "table", run_id))'
            )

    def _run_recorded(self) -> bool:
        """Whether `_bizon_loads` records this run as committed into the table."""
        return self._loaded_rows() is not None

    def _loaded_rows(self) -> int | None:
        """The rows `_bizon_loads` records this run loaded, None if it committed none."""
        found = self.sql.execute(
            f'SELECT "rows" FROM {self._name(LOADS_TABLE)} WHERE "schema" = ? AND "table" = ?'
            " AND run_id = ?",
            [self.schema, self.table, self.context.run_id],
        )
        return found[0][0] if found else None

    def _table_columns(self, table: str) -> dict[str, ColumnType | None] | None:
        """A table's columns, name -> type (None: a type bizon does not write), or None."""
        kind = self.sql.relation_kind(self.schema, table)
        if kind is None:
            return None
        if not kind:
            raise self._error(f"{self.schema}.{table} exists and is not a table")
        types = self.sql.catalog_types
        return {
            name: types.get(data_type) for name, data_type in self.sql.columns(self.schema, table)
        }

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

    def _create_stage(self) -> None:
        """Create an empty staging table, in place of any left by another run."""
        columns = [
            f"{self.sql.quote(n)} {self.sql.type_of(t)}" for n, t in BOOKKEEPING_TYPES.items()
        ]
        # A row is loaded when its batch is: that transaction's time.
        columns[list(BOOKKEEPING_TYPES).index(LOADED_AT_COLUMN)] += " DEFAULT now()"
        columns += [
            f"{self.sql.quote(BATCH_COLUMN)} INTEGER NOT NULL",
            f"{self.sql.quote(ROW_COLUMN)} BIGINT NOT NULL",
        ]
        stage = self._name(self.stage)
        with self.sql.transaction():
            self.sql.execute(f"DROP TABLE IF EXISTS {stage}")
            self.sql.execute(f"CREATE TABLE {stage} ({', '.join(columns)})")

    def _stage_holds(self, batch: int) -> bool:
        """Whether staging holds only this run's rows, batch `batch` among them (if > 0)."""
        stage, quote = self._name(self.stage), self.sql.quote
        foreign = self.sql.execute(
            f"SELECT 1 FROM {stage} WHERE {quote(RUN_ID_COLUMN)} IS DISTINCT FROM ? LIMIT 1",
            [self.context.run_id],
        )
        present = self.sql.execute(
            f"SELECT 1 FROM {stage} WHERE {quote(BATCH_COLUMN)} = ? LIMIT 1", [batch]
        )
        return not foreign and (batch == 0 or bool(present))

    def _resume_stage(self, batch: int, columns: dict[str, ColumnType | None]) -> None:
        """Delete the batches after `batch` from staging (of `columns`); resume after it."""
        stage, quote = self._name(self.stage), self.sql.quote
        fields = {n: t for n, t in columns.items() if not reserved_column(n, self._dialect.fold)}
        if any(kind is None for kind in fields.values()):
            raise self._cannot_resume("a column has a type bizon does not write")
        with self.sql.transaction():
            self.sql.execute(f"DELETE FROM {stage} WHERE {quote(BATCH_COLUMN)} > ?", [batch])
        # Text columns holding only nulls so far are still untyped.
        texts = [n for n, t in fields.items() if t is ColumnType.TEXT]
        aggregates = "".join(f", count({quote(n)}) > 0" for n in texts)
        [row] = self.sql.execute(
            f"SELECT coalesce(max({quote(ROW_COLUMN)}) + 1, 0){aggregates} FROM {stage}"
        )
        for name, has_values in zip(texts, row[1:], strict=True):
            if not has_values:
                fields[name] = None
        self._staged = fields
        self._names.add_existing(fields)
        self._rows = row[0]
        self._batch = self._cut = self._reported = batch

    def _cannot_resume(self, why: str) -> DestinationError:
        return self._error(
            f"cannot resume from the staging table {self.schema}.{self.stage}: {why};"
            " run again without resuming (--no-resume)"
        )

    # Batches --------------------------------------------------------------------------

    def _marker(self) -> dict[str, Any]:
        return {"run_id": self.context.run_id, "batch": self._batch}

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

    def _evolve_stage(self, found: dict[str, ColumnType | None]) -> dict[str, ColumnType | None]:
        """Add and widen staging's columns to hold the types found; staging's types then.

        Run in the batch's transaction; the caller keeps the types once it commits.
        """
        stage, types = self._name(self.stage), dict(self._staged)
        for column, kind in found.items():
            name = self.sql.quote(column)
            if column not in types:
                self.sql.execute(f"ALTER TABLE {stage} ADD COLUMN {name} {self.sql.type_of(kind)}")
                types[column] = kind
                continue
            current = types[column]
            if kind is None:
                continue
            wider = kind if current is None else widen(current, kind)
            assert wider is not None
            if wider != (current or ColumnType.TEXT):
                self.sql.execute(
                    f"ALTER TABLE {stage} ALTER COLUMN {name} SET DATA TYPE"
                    f" {self.sql.types[wider]} USING {self.sql.convert(name, current, wider)}"
                )
            types[column] = wider
        return types

    # Commit ---------------------------------------------------------------------------

    def _commit_load(self) -> None:
        """Move staging into the table and record the run, in one transaction."""
        stage = self._name(self.stage)
        with self.sql.transaction():
            if (loaded_before := self._loaded_rows()) is not None:
                self.sql.execute(f"DROP TABLE IF EXISTS {stage}")
                self._description = {**self._describe_table(), "loaded_rows": loaded_before}
                return
            self.sql.prepare_commit()
            target = self._table_columns(self.table)
            dedupe = self.disposition is not WriteDisposition.APPEND and self._has_duplicates()
            if target is None or self.disposition is WriteDisposition.REPLACE:
                loaded = self._rebuild(dedupe)
            else:
                loaded = self._insert(target, dedupe)
            self.sql.execute(
                f'INSERT INTO {self._name(LOADS_TABLE)} ("schema", "table", run_id,'
                ' committed_at, "rows") VALUES (?, ?, ?, now(), ?)',
                [self.schema, self.table, self.context.run_id, loaded],
            )
            self._description = {**self._describe_table(), "loaded_rows": loaded}

    def _has_duplicates(self) -> bool:
        # A grouping, not count(DISTINCT): DuckDB spills it to disk beyond memory_limit.
        return bool(
            self.sql.execute(
                f"SELECT 1 FROM {self._name(self.stage)} GROUP BY {self.sql.quote(ID_COLUMN)}"
                " HAVING count(*) > 1 LIMIT 1"
            )
        )

    def _rebuild(self, dedupe: bool) -> int:
        """Make staging the table, in place of the old one if any; rows loaded.

        Without duplicates, staging itself becomes the table (its own two columns dropped,
        then renamed): no row is copied. With them, the table is built from the last
        version of each record.
        """
        stage, table, quote = self._name(self.stage), self._name(self.table), self.sql.quote
        if dedupe:
            staged = ", ".join(quote(c) for c in {**BOOKKEEPING_TYPES, **self._staged})
            self.sql.execute(f"DROP TABLE IF EXISTS {table}")
            loaded = self.sql.rowcount(
                f"CREATE TABLE {table} AS {self.sql.last_versions(staged, stage)}"
            )
            self.sql.execute(f"DROP TABLE {stage}")
            return loaded
        [(loaded,)] = self.sql.execute(f"SELECT count(*) FROM {stage}")
        for column in (BATCH_COLUMN, ROW_COLUMN):
            self.sql.execute(f"ALTER TABLE {stage} DROP COLUMN {quote(column)}")
        self.sql.execute(f"ALTER TABLE {stage} ALTER COLUMN {quote(LOADED_AT_COLUMN)} DROP DEFAULT")
        self.sql.execute(f"DROP TABLE IF EXISTS {table}")
        self.sql.execute(f"ALTER TABLE {stage} RENAME TO {quote(self.table)}")
        return loaded

    def _insert(self, target: dict[str, ColumnType | None], dedupe: bool) -> int:
        """Merge (delete the records' previous versions) or append staging into the table."""
        stage, table, quote = self._name(self.stage), self._name(self.table), self.sql.quote
        columns = self._evolve_table(target, {**BOOKKEEPING_TYPES, **self._staged})
        expressions = ", ".join(expression for _, expression in columns)
        if dedupe:
            rows = self.sql.last_versions(expressions, stage)
        else:
            rows = f"SELECT {expressions} FROM {stage}"
        if self.disposition is WriteDisposition.MERGE:
            self.sql.prepare_merge(table, stage, quote(self._derived_name(INDEX_PREFIX)))
            identifier = quote(ID_COLUMN)
            self.sql.execute(
                f"DELETE FROM {table} WHERE {identifier} IN (SELECT {identifier} FROM {stage})"
            )
        elif self.disposition is WriteDisposition.PARTITION:
            self.sql.execute(
                f"DELETE FROM {table} WHERE {quote(PARTITION_FIELD)} = ?", [self.context.partition]
            )
        names = ", ".join(quote(column) for column, _ in columns)
        loaded = self.sql.rowcount(f"INSERT INTO {table} ({names}) {rows}")
        self.sql.execute(f"DROP TABLE {stage}")
        return loaded

    def _evolve_table(
        self, target: dict[str, ColumnType | None], staged: dict[str, ColumnType | None]
    ) -> list[tuple[str, str]]:
        """Add and widen the table's columns for staging's; (column, staging expression)."""
        table, sql = self._name(self.table), self.sql
        columns: list[tuple[str, str]] = []
        for column, kind in staged.items():
            name = sql.quote(column)
            if column not in target:
                final = kind or ColumnType.TEXT
                sql.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql.types[final]}")
                columns.append((column, sql.convert(name, kind, final)))
                continue
            have = target[column]
            if have is None:  # a type of the user's choosing: the database's implicit cast
                columns.append((column, name))
                continue
            if kind is None:
                final = have
            elif have is ColumnType.TEXT and kind is not have and self._only_nulls(column):
                final = kind  # typed when its first value comes, as in staging
            else:
                final = widen(have, kind) or have
            if final != have:
                sql.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {name} SET DATA TYPE"
                    f" {sql.types[final]} USING {sql.convert(name, have, final)}"
                )
            columns.append((column, sql.convert(name, kind, final)))
        return columns

    def _only_nulls(self, column: str) -> bool:
        [(empty,)] = self.sql.execute(
            f"SELECT count({self.sql.quote(column)}) = 0 FROM {self._name(self.table)}"
        )
        return bool(empty)

    def _describe_table(self) -> dict[str, Any]:
        """`columns` and `row_count` of the committed table."""
        columns = self.sql.columns(self.schema, self.table)
        if not columns:
            return {"columns": [], "row_count": 0}
        [(count,)] = self.sql.execute(f"SELECT count(*) FROM {self._name(self.table)}")
        return {
            "columns": [{"name": name, "type": kind} for name, kind in columns],
            "row_count": count,
        }

    # Errors ---------------------------------------------------------------------------

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

    # What the database adds -----------------------------------------------------------

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
    def _write_batch(self, batch: int) -> None:
        """Write the kept records to staging as `batch`, in one transaction.

        When it returns, the batch is durable and `self._batch` is `batch`; or, for a
        destination that `writes_in_background`, the batch is on its way and
        `_collect_batches` sets `self._batch` once it is durable.
        """

    def _collect_batches(self, wait: bool) -> None:
        """Take note of the batches written in the background (all of them, if `wait`)."""
