"""The `postgres` destination: typed tables, loaded with COPY through a staging table."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from pydantic import ConfigDict, Field, field_validator

from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import WriteContext
from bizon_core.destination.sql import (
    BATCH_COLUMN,
    EXTRACTED_AT_COLUMN,
    ID_COLUMN,
    ROW_COLUMN,
    RUN_ID_COLUMN,
    ColumnType,
    SqlDestinationConfig,
    infer_columns,
)
from bizon_core.destination.sql_dialect import SqlDialect
from bizon_core.destination.sql_load import StagedSqlDestination
from bizon_core.secrets import Secret, redact
from bizon_core.source.models import SourceRecord

from .copy_format import Misfit, escape, format_batch
from .lock import LoadLock, application_name, bound_session

NAME = "postgres"
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class PostgresDestinationConfig(SqlDestinationConfig):
    """`destination.config:` of the postgres destination."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(
        default="localhost",
        description="Server host name or address, or the directory of its unix socket.",
    )
    port: int = Field(default=5432, ge=1, le=65535, description="Server port.")
    database: str = Field(description="Database to load into.")
    user: str = Field(description="Role to connect as.")
    password: Secret | None = Field(
        default=None,
        description="Password; write it as a reference (env://VAR), never in the file. "
        "Unset: libpq's own sources apply (PGPASSWORD, ~/.pgpass).",
    )
    schema_name: str = Field(
        default="public",
        alias="schema",
        description="Schema of the tables; it must exist (it is never created).",
    )
    connect_timeout: int = Field(default=10, gt=0, description="Seconds to wait for a connection.")
    sslmode: str | None = Field(
        default=None, description=f"libpq sslmode: {', '.join(_SSL_MODES)}; default: libpq's."
    )

    @field_validator("sslmode")
    @classmethod
    def _valid_sslmode(cls, value: str | None) -> str | None:
        if value is not None and value not in _SSL_MODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSL_MODES)}")
        return value


class PostgresDialect(SqlDialect):
    """PostgreSQL's SQL, on one session in autocommit mode (transactions are explicit)."""

    types = {
        ColumnType.BOOLEAN: "boolean",
        ColumnType.BIGINT: "bigint",
        ColumnType.DOUBLE: "double precision",
        ColumnType.TIMESTAMP: "timestamptz",
        ColumnType.TEXT: "text",
        ColumnType.JSON: "jsonb",
    }
    catalog_types = {
        "boolean": ColumnType.BOOLEAN,
        "bigint": ColumnType.BIGINT,
        "double precision": ColumnType.DOUBLE,
        "timestamp with time zone": ColumnType.TIMESTAMP,
        "text": ColumnType.TEXT,
        "jsonb": ColumnType.JSON,
    }
    max_identifier_bytes = 63  # PostgreSQL cuts longer names (NAMEDATALEN - 1)

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self.conn.execute(*_psycopg(statement, params))
        return cursor.fetchall() if cursor.description else []

    def rowcount(self, statement: str, params: Sequence[Any] = ()) -> int:
        with self.conn.cursor() as cursor:
            cursor.execute(*_psycopg(statement, params))
            return cursor.rowcount

    def transaction(self) -> psycopg.Transaction:
        return self.conn.transaction()

    def relation_kind(self, schema: str, name: str) -> bool | None:
        kind = self.conn.execute(
            "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        ).fetchone()
        return None if kind is None else kind[0] in ("r", "p")

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        ).fetchall()

    def timestamp_text(self, column: str) -> str:
        return f"(to_json({column}) #>> '{{}}')"  # ISO 8601, as loaded

    def to_json(self, column: str) -> str:
        return f"to_jsonb({column})"

    def last_versions(self, columns: str, stage: str) -> str:
        record, batch, row = map(self.quote, (ID_COLUMN, BATCH_COLUMN, ROW_COLUMN))
        return (
            f'SELECT {columns} FROM (SELECT DISTINCT ON ({record} COLLATE "C") * FROM {stage}'
            f' ORDER BY {record} COLLATE "C", {batch} DESC, {row} DESC) AS s'
        )

    def serialize(self, key: str) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def prepare_commit(self) -> None:
        # The sort keeping the last version of each record: in memory, not on disk.
        self.conn.execute("SET LOCAL work_mem = '256MB'")

    def prepare_merge(self, table: str, stage: str, index: str) -> None:
        self.conn.execute(f"ANALYZE {stage}")
        self.conn.execute(
            f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({self.quote(ID_COLUMN)})"
        )


class PostgresDestination(StagedSqlDestination):
    """Loads each stream into a typed PostgreSQL table, atomically, with COPY.

    Columns: `_bizon_id`, `_bizon_extracted_at`, `_bizon_loaded_at`, `_bizon_run_id`, then
    one column per top-level field of the records, typed boolean, bigint, double precision,
    timestamptz (ISO-8601 strings), text or jsonb (objects, arrays). A new field adds a
    column; a field whose values change type widens its column (bigint to double
    precision, anything to text, anything with nested values to jsonb) and converts what
    is there: no record or value is ever refused or dropped. Naive timestamps are UTC.
    `_bizon_extracted_at` is when the page was fetched, `_bizon_loaded_at` when its batch
    was written to the database; the run became visible at its `_bizon_loads.committed_at`.

    A run is written with COPY into `<schema>._bizon_stage_<table>`, a regular table:
    every `batch_size` records one transaction appends a batch and the run may be resumed
    from there after a crash. `commit()` then moves it in one transaction:

    - `replace` (default for full refresh): staging itself, its own columns dropped,
      is swapped in for the old table (or, when the run holds a record twice, a new
      table of the last versions is); the old table's indexes, grants and dependent
      views are not kept: a view on the table makes the swap fail, use merge for such
      tables;
    - `merge` (default for incremental): rows whose `_bizon_id` was loaded are replaced
      by the last version loaded (an index on `_bizon_id` is created for it);
    - `append`: every row is added.

    Replace and merge keep one row per record id. Each committed run is recorded in
    `<schema>._bizon_loads`; committing a run already recorded there does nothing, so a
    crash between the table's commit and the cursor's is harmless. Until `commit()` the
    table is untouched. One load at a time per table (a session advisory lock); a
    missing schema is an error, not created, so that a typo cannot scatter tables.
    """

    name = NAME
    driver_errors = (psycopg.Error,)

    def __init__(self, config: PostgresDestinationConfig, context: WriteContext):
        super().__init__(config, context, config.schema_name, PostgresDialect)
        self.config: PostgresDestinationConfig = config
        self._conn: psycopg.Connection | None = None
        self._lock: LoadLock | None = None
        self._pending: list[tuple[Sequence[SourceRecord], str]] = []

    @staticmethod
    def get_config_class() -> type[DestinationConfig]:
        return PostgresDestinationConfig

    # The protocol ---------------------------------------------------------------------

    def check_connection(self) -> tuple[bool, str | None]:
        try:
            with self._open() as conn:
                conn.execute("SELECT 1")
                if not self._schema_exists(conn):
                    return False, self._clean(self._missing_schema())
        except psycopg.Error as exc:
            return False, self._clean(self._connect_failure(exc))
        return True, None

    def begin(self, resume: dict[str, Any] | None) -> None:
        self._conn = self._connect()
        self.sql = PostgresDialect(self._conn)
        with self._errors("cannot prepare the load"):
            if not self._schema_exists(self._conn):
                raise self._error(self._missing_schema())
            self._take_lock()
            self._prepare(resume)

    def _buffer(self, records: Sequence[SourceRecord]) -> None:
        self._pending.append((records, datetime.now(UTC).isoformat()))

    def _connected(self) -> bool:
        return self._conn is not None

    def existing_columns(self) -> list[tuple[str, str]] | None:
        return None  # not worth a connection each time the definitions load

    @contextmanager
    def _reading(self) -> Iterator[PostgresDialect | None]:
        try:
            conn = self._open()
        except psycopg.Error:
            yield None
            return
        try:
            yield PostgresDialect(conn)
        finally:
            conn.close()

    def _database_label(self) -> str:
        return self.config.database

    def finalize(self, success: bool) -> None:
        conn, self._conn = self._conn, None
        self._pending = []
        if conn is None:
            return
        lock, self._lock = self._lock, None
        try:
            if lock is not None and not conn.closed:
                lock.release()
        except psycopg.Error:
            pass  # closing the session releases the lock anyway
        finally:
            conn.close()

    # Connection, lock, errors ---------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return self._open()
        except psycopg.Error as exc:
            # from None: nothing of the connection attempt is kept but this one line.
            raise self._error(self._connect_failure(exc)) from None

    def _connect_failure(self, exc: psycopg.Error) -> str:
        config = self.config
        where = f"{config.user}@{config.host}:{config.port}/{config.database}"
        return f"cannot connect to {where}: {_one_line(exc)}"

    def _open(self) -> psycopg.Connection:
        """A session in autocommit mode (transactions are explicit), in UTC."""
        config = self.config
        params: dict[str, Any] = {
            "host": config.host,
            "port": config.port,
            "dbname": config.database,
            "user": config.user,
            "connect_timeout": config.connect_timeout,
            "application_name": application_name(),
            "keepalives": 1,  # the client notices a vanished server too
        }
        if config.password is not None:
            params["password"] = config.password
        if config.sslmode is not None:
            params["sslmode"] = config.sslmode
        conn = psycopg.connect(autocommit=True, **params)
        try:
            conn.execute("SET TIME ZONE 'UTC'")  # naive timestamps are UTC
            bound_session(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take_lock(self) -> None:
        lock = LoadLock(self._db, self.qualified)
        holder = lock.take()
        if holder is not None and holder.is_gone():
            raise self._error(
                f"the load lock of table {self.qualified} is {holder.describe()}, a process "
                f"that is gone, and the server has not ended that session; ask an administrator "
                f"to run SELECT pg_terminate_backend({holder.backend})"
            )
        if holder is not None:
            raise self._error(
                f"another load into table {self.qualified} is running ({holder.describe()})"
            )
        self._lock = lock

    @property
    def _db(self) -> psycopg.Connection:
        assert self._conn is not None, "begin() was not called"
        return self._conn

    def _explain(self, exc: BaseException) -> str:
        return _one_line(exc)

    def _clean(self, message: str) -> str:
        return redact(" ".join(message.split()))  # the password is a registered secret

    def _schema_exists(self, conn: psycopg.Connection) -> bool:
        found = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (self.schema,)
        ).fetchone()
        return found is not None

    def _missing_schema(self) -> str:
        return (
            f"schema {self.schema} does not exist in database {self.config.database}; "
            f"create it (CREATE SCHEMA {self.schema}) or set destination.config.schema"
        )

    # Batches ------------------------------------------------------------------------

    def _write_batch(self, batch: int) -> None:
        """Append the pending records to staging as `batch`, in one transaction.

        COPY first tries staging's columns as they are; when a field or a value does not
        fit, the transaction is rolled back and the batch typed, staging widened, and
        the batch copied again.
        """
        pages, staged = self._pending, self._staged
        for attempt in (1, 2):
            try:
                with self._errors(f"cannot write batch {batch} to staging"), self.sql.transaction():
                    if attempt == 2:
                        staged = self._evolve_stage(self._found_types(pages))
                    self._copy(pages, batch, staged)
                break
            except Misfit:
                if attempt == 2:  # pragma: no cover - widening makes every value fit
                    raise self._error(f"batch {batch}: a value fits no column type") from None
        self._staged = staged
        self._rows += sum(len(records) for records, _ in pages)
        self._batch = batch
        self._pending = []

    def _found_types(
        self, pages: list[tuple[Sequence[SourceRecord], str]]
    ) -> dict[str, ColumnType | None]:
        """The column of each field of these records and the type of its values."""
        rows = [record.data for records, _ in pages for record in records]
        return {self._names.column(f): kind for f, kind in infer_columns(rows).items()}

    def _copy(
        self,
        pages: list[tuple[Sequence[SourceRecord], str]],
        batch: int,
        staged: dict[str, ColumnType | None],
    ) -> None:
        fields = [(f, column) for f, column in self._names.columns.items() if column in staged]
        chunks = format_batch(
            pages,
            [(field, staged[column]) for field, column in fields],
            frozenset(field for field, _ in fields),
            f"{escape(self.context.run_id)}\t{batch}",
            self._rows,
        )
        first = next(chunks, None)  # a misfit in the first rows is found before COPY starts
        # `_bizon_loaded_at` takes its default: this transaction's time.
        names = [ID_COLUMN, EXTRACTED_AT_COLUMN, RUN_ID_COLUMN, BATCH_COLUMN, ROW_COLUMN]
        names += [column for _, column in fields]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.schema, self.stage), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        with self._db.cursor() as cursor, cursor.copy(statement) as copy:
            if first is not None:
                copy.write(first)
            for chunk in chunks:
                copy.write(chunk)


def _psycopg(statement: str, params: Sequence[Any]) -> tuple[str, tuple | None]:
    """A statement with `?` parameters as psycopg takes it (`%s`, `%` written `%%`)."""
    if not params:
        return statement, None
    return statement.replace("%", "%%").replace("?", "%s"), tuple(params)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (server errors: the primary message only)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return " ".join(text.split())
