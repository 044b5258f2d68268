"""The `postgres` destination: typed tables, loaded with COPY through a staging table."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import orjson
import psycopg
from psycopg import sql
from pydantic import ConfigDict, Field, field_validator

from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import WriteContext
from bizon_core.destination.sql import (
    BATCH_COLUMN,
    BOOKKEEPING_COLUMNS,
    BOOKKEEPING_TYPES,
    EXTRACTED_AT_COLUMN,
    ID_COLUMN,
    LOADED_AT_COLUMN,
    LOADS_TABLE,
    ROW_COLUMN,
    RUN_ID_COLUMN,
    STAGE_PREFIX,
    ColumnType,
    SqlDestinationConfig,
    StagedSqlDestination,
    WriteDisposition,
    all_timestamps,
    infer_columns,
    value_type,
    widen,
)
from bizon_core.secrets import redact, register_secret
from bizon_core.source.models import SourceRecord

from .lock import LoadLock, application_name, bound_session

NAME = "postgres"
#: Staging-only column: the position of a row in its batch, so the last version of a
#: record written twice in one batch is known without relying on physical order.
NEW_PREFIX = "_bizon_new_"
INDEX_PREFIX = "_bizon_idx_"
_RESERVED = frozenset((*BOOKKEEPING_COLUMNS, BATCH_COLUMN, ROW_COLUMN))
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL cuts longer names (NAMEDATALEN - 1)
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_PG_TYPES = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double precision",
    ColumnType.TIMESTAMP: "timestamptz",
    ColumnType.TEXT: "text",
    ColumnType.JSON: "jsonb",
}
#: `information_schema.columns.data_type` of the types above.
_CATALOG_TYPES = {
    "boolean": ColumnType.BOOLEAN,
    "bigint": ColumnType.BIGINT,
    "double precision": ColumnType.DOUBLE,
    "timestamp with time zone": ColumnType.TIMESTAMP,
    "text": ColumnType.TEXT,
    "jsonb": ColumnType.JSON,
}


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
    password: str | None = Field(
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
        if config.password:  # already so when it came from a pipeline file; not if built here
            register_secret(config.password)
        super().__init__(config, context, config.schema_name)
        self.config: PostgresDestinationConfig = config
        if self.table == LOADS_TABLE or self.table.startswith((STAGE_PREFIX, NEW_PREFIX)):
            raise self._error("the table name is one bizon uses for its own tables")
        self.stage = _derived_name(STAGE_PREFIX, self.table)
        self._conn: psycopg.Connection | None = None
        self._lock: LoadLock | None = None
        #: Columns of the staging table after the bookkeeping ones: name -> type, None
        #: while every value seen is null (the column is text until a value comes).
        self._stage_columns: dict[str, ColumnType | None] = {}
        #: Record field -> its column.
        self._field_columns: dict[str, str] = {}
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
        with self._errors("cannot prepare the load"):
            if not self._schema_exists(self._conn):
                raise self._error(self._missing_schema())
            self._take_lock()
            self._ensure_loads_table()
            self._open_stage(resume)

    def _buffer(self, records: Sequence[SourceRecord]) -> None:
        self._pending.append((records, datetime.now(UTC).isoformat()))

    def _connected(self) -> bool:
        return self._conn is not None

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

    # Catalog --------------------------------------------------------------------------

    def _ident(self, name: str) -> sql.Composed:
        return sql.Identifier(self.schema, name)

    def _table_columns(self, name: str) -> dict[str, ColumnType | None] | None:
        """Columns of a table by name -> type (None: a type bizon does not use), or None."""
        kind = self._db.execute(
            "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, name),
        ).fetchone()
        if kind is None:
            return None
        if kind[0] not in ("r", "p"):
            raise self._error(f"{self.schema}.{name} exists and is not a table")
        rows = self._db.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, name),
        ).fetchall()
        return {column: _CATALOG_TYPES.get(data_type) for column, data_type in rows}

    def _describe_table(self) -> dict[str, Any]:
        rows = self._db.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, self.table),
        ).fetchall()
        if not rows:
            return {"columns": [], "row_count": 0}
        count = self._db.execute(
            sql.SQL("SELECT count(*) FROM {}").format(self._ident(self.table))
        ).fetchone()
        return {
            "columns": [{"name": name, "type": data_type} for name, data_type in rows],
            "row_count": count[0] if count else 0,
        }

    # Loads table ----------------------------------------------------------------------

    def _ensure_loads_table(self) -> None:
        with self._db.transaction():
            # Two first loads into one schema would race on CREATE TABLE IF NOT EXISTS.
            self._db.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{LOADS_TABLE}",)
            )
            self._db.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    '"schema" text NOT NULL, "table" text NOT NULL, run_id text NOT NULL,'
                    ' committed_at timestamptz NOT NULL, "rows" bigint NOT NULL,'
                    ' PRIMARY KEY ("schema", "table", run_id))'
                ).format(self._ident(LOADS_TABLE))
            )

    def _run_recorded(self) -> bool:
        found = self._db.execute(
            sql.SQL('SELECT 1 FROM {} WHERE "schema" = %s AND "table" = %s AND run_id = %s').format(
                self._ident(LOADS_TABLE)
            ),
            (self.schema, self.table, self.context.run_id),
        ).fetchone()
        return found is not None

    # Staging --------------------------------------------------------------------------

    def _create_stage(self) -> None:
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_PG_TYPES[kind]))
            for name, kind in BOOKKEEPING_TYPES.items()
        ]
        # A row is loaded when its batch is: that transaction's time.
        columns[list(BOOKKEEPING_TYPES).index(LOADED_AT_COLUMN)] += sql.SQL(" DEFAULT now()")
        columns += [
            sql.SQL("{} integer NOT NULL").format(sql.Identifier(BATCH_COLUMN)),
            sql.SQL("{} integer NOT NULL").format(sql.Identifier(ROW_COLUMN)),
        ]
        with self._db.transaction():
            self._db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(self.stage)))
            self._db.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    self._ident(self.stage), sql.SQL(", ").join(columns)
                )
            )
        self._stage_columns, self._field_columns = {}, {}

    def _stage_holds(self, batch: int) -> bool:
        stage = self._ident(self.stage)
        foreign = self._db.execute(
            sql.SQL("SELECT 1 FROM {} WHERE {} IS DISTINCT FROM %s LIMIT 1").format(
                stage, sql.Identifier(RUN_ID_COLUMN)
            ),
            (self.context.run_id,),
        ).fetchone()
        present = self._db.execute(
            sql.SQL("SELECT 1 FROM {} WHERE {} = %s LIMIT 1").format(
                stage, sql.Identifier(BATCH_COLUMN)
            ),
            (batch,),
        ).fetchone()
        return foreign is None and (batch == 0 or present is not None)

    def _resume_stage(self, batch: int, columns: dict[str, ColumnType | None]) -> None:
        stage = self._ident(self.stage)
        self._db.execute(
            sql.SQL("DELETE FROM {} WHERE {} > %s").format(stage, sql.Identifier(BATCH_COLUMN)),
            (batch,),
        )
        fields = {n: t for n, t in columns.items() if n not in _RESERVED}
        if any(kind is None for kind in fields.values()):
            raise self._cannot_resume("a column has a type bizon does not write")
        # Text columns that hold only nulls so far are still untyped.
        texts = [n for n, t in fields.items() if t is ColumnType.TEXT]
        if texts:
            counts = self._db.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("count({}) > 0").format(sql.Identifier(n)) for n in texts
                    ),
                    stage,
                )
            ).fetchone()
            for name, has_values in zip(texts, counts or (), strict=True):
                if not has_values:
                    fields[name] = None
        self._stage_columns, self._field_columns = fields, {}
        self._resumed_at(batch)

    def _write_batch(self, batch: int) -> None:
        """Append the pending records to staging as `batch`, in one transaction."""
        pages = self._pending
        for attempt in (1, 2):
            saved = dict(self._stage_columns), dict(self._field_columns)
            try:
                with self._errors(f"cannot write batch {batch} to staging"), self._db.transaction():
                    if attempt == 2:
                        self._evolve_stage(pages)
                    self._copy(pages, batch)
                break
            except _Misfit:
                self._stage_columns, self._field_columns = saved
                if attempt == 2:  # pragma: no cover - widening makes every value fit
                    raise self._error(f"batch {batch}: a value fits no column type") from None
            except BaseException:
                self._stage_columns, self._field_columns = saved
                raise
        self._batch = batch
        self._pending = []

    def _evolve_stage(self, pages: list[tuple[Sequence[SourceRecord], str]]) -> None:
        """Add and widen staging columns for the fields and types of these records."""
        rows = [record.data for records, _ in pages for record in records]
        stage = self._ident(self.stage)
        for field, kind in infer_columns(rows).items():
            column = self._column_for(field)
            name = sql.Identifier(column)
            if column not in self._stage_columns:
                self._db.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        stage, name, _sql_type(kind or ColumnType.TEXT)
                    )
                )
                self._stage_columns[column] = kind
                continue
            current = self._stage_columns[column]
            if kind is None:
                continue
            wider = kind if current is None else widen(current, kind)
            assert wider is not None
            if wider != (current or ColumnType.TEXT):
                self._db.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}").format(
                        stage, name, _sql_type(wider), _cast(name, current, wider)
                    )
                )
            self._stage_columns[column] = wider

    def _column_for(self, field: str) -> str:
        column = self._field_columns.get(field)
        if column is None:
            column = _column_name(field)
            if column in _RESERVED:
                raise self._error(
                    f"a record field is named {field!r}, like a column bizon adds; "
                    "rename it in the source"
                )
            self._field_columns[field] = column
        return column

    def _copy(self, pages: list[tuple[Sequence[SourceRecord], str]], batch: int) -> None:
        fields = [
            (field, column)
            for field, column in self._field_columns.items()
            if column in self._stage_columns
        ]
        chunks = _format_batch(
            pages,
            [(field, self._stage_columns[column]) for field, column in fields],
            frozenset(self._field_columns),
            f"{_escape(self.context.run_id)}\t{batch}",
        )
        first = next(chunks, None)  # a misfit in the first rows is found before COPY starts
        # `_bizon_loaded_at` takes its default: this transaction's time.
        names = [ID_COLUMN, EXTRACTED_AT_COLUMN, RUN_ID_COLUMN, BATCH_COLUMN, ROW_COLUMN]
        names += [column for _, column in fields]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            self._ident(self.stage), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        with self._db.cursor() as cursor, cursor.copy(statement) as copy:
            if first is not None:
                copy.write(first)
            for chunk in chunks:
                copy.write(chunk)

    # Commit ---------------------------------------------------------------------------

    def _commit_load(self) -> None:
        db = self._db
        with db.transaction():
            if self._run_recorded():
                db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(self.stage)))
                self._description = self._describe_table()
                return
            # The sort keeping the last version of each record: in memory, not on disk.
            db.execute("SET LOCAL work_mem = '256MB'")
            target = self._table_columns(self.table)
            replace = self.disposition is WriteDisposition.REPLACE
            work = _derived_name(NEW_PREFIX, self.table) if replace else self.table
            existing: dict[str, ColumnType | None] = {}
            if replace:
                db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(work)))
            if replace and not self._has_duplicates():
                loaded = self._swap_in_stage(target is not None)
                self._record_load(loaded)
                return
            if target is None or replace:
                # A new table (a replace's too: it holds this run's columns only):
                # bookkeeping columns first, then the rest in staging order.
                shape = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), _sql_type(t))
                    for n, t in BOOKKEEPING_TYPES.items()
                )
                db.execute(sql.SQL("CREATE TABLE {} ({})").format(self._ident(work), shape))
                existing = dict(BOOKKEEPING_TYPES)
            else:
                existing = target
            columns = self._evolve_table(work, existing)

            stage = self._ident(self.stage)
            rows: sql.Composable = stage
            if self.disposition is not WriteDisposition.APPEND:
                rows = sql.SQL(
                    '(SELECT DISTINCT ON ({id} COLLATE "C") * FROM {stage}'
                    ' ORDER BY {id} COLLATE "C", {batch} DESC, {row} DESC) AS s'
                ).format(
                    id=sql.Identifier(ID_COLUMN),
                    stage=stage,
                    batch=sql.Identifier(BATCH_COLUMN),
                    row=sql.Identifier(ROW_COLUMN),
                )
            if self.disposition is WriteDisposition.MERGE:
                db.execute(sql.SQL("ANALYZE {}").format(stage))
                db.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                        sql.Identifier(_derived_name(INDEX_PREFIX, self.table)),
                        self._ident(work),
                        sql.Identifier(ID_COLUMN),
                    )
                )
                db.execute(
                    sql.SQL("DELETE FROM {} WHERE {id} IN (SELECT {id} FROM {})").format(
                        self._ident(work), stage, id=sql.Identifier(ID_COLUMN)
                    )
                )
            with db.cursor() as cursor:
                cursor.execute(
                    sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                        self._ident(work),
                        sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns),
                        sql.SQL(", ").join(expression for _, expression in columns),
                        rows,
                    )
                )
                loaded = cursor.rowcount
            if replace:
                if target is not None:
                    db.execute(sql.SQL("DROP TABLE {}").format(self._ident(self.table)))
                db.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                        self._ident(work), sql.Identifier(self.table)
                    )
                )
            db.execute(sql.SQL("DROP TABLE {}").format(stage))
            self._record_load(loaded)

    def _has_duplicates(self) -> bool:
        found = self._db.execute(
            sql.SQL("SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1 LIMIT 1").format(
                self._ident(self.stage), sql.Identifier(ID_COLUMN)
            )
        ).fetchone()
        return found is not None

    def _swap_in_stage(self, replaces: bool) -> int:
        """Make staging the table (its own columns dropped, renamed): no row is copied."""
        stage = self._ident(self.stage)
        self._db.execute(
            sql.SQL(
                "ALTER TABLE {} DROP COLUMN {}, DROP COLUMN {}, ALTER COLUMN {} DROP DEFAULT"
            ).format(
                stage,
                sql.Identifier(BATCH_COLUMN),
                sql.Identifier(ROW_COLUMN),
                sql.Identifier(LOADED_AT_COLUMN),
            )
        )
        if replaces:
            self._db.execute(sql.SQL("DROP TABLE {}").format(self._ident(self.table)))
        self._db.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, sql.Identifier(self.table))
        )
        row = self._db.execute(
            sql.SQL("SELECT count(*) FROM {}").format(self._ident(self.table))
        ).fetchone()
        return row[0] if row else 0

    def _record_load(self, rows: int) -> None:
        """Record the run in `_bizon_loads`, in the commit's transaction."""
        self._db.execute(
            sql.SQL(
                'INSERT INTO {} ("schema", "table", run_id, committed_at, "rows")'
                " VALUES (%s, %s, %s, now(), %s)"
            ).format(self._ident(LOADS_TABLE)),
            (self.schema, self.table, self.context.run_id, rows),
        )
        self._description = self._describe_table()

    def _evolve_table(
        self, work: str, existing: dict[str, ColumnType | None]
    ) -> list[tuple[str, sql.Composable]]:
        """Add and widen the columns of `work` for staging's; (column, staging expression)."""
        columns: list[tuple[str, sql.Composable]] = []
        table = self._ident(work)
        staged: dict[str, ColumnType | None] = {**BOOKKEEPING_TYPES, **self._stage_columns}
        for column, kind in staged.items():
            name = sql.Identifier(column)
            if column not in existing:
                final = kind or ColumnType.TEXT
                self._db.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(table, name, _sql_type(final))
                )
                columns.append((column, _cast(name, kind, final)))
                continue
            have = existing[column]
            if have is None:  # a type of the user's choosing: PostgreSQL's assignment casts
                columns.append((column, name))
                continue
            final = have if kind is None else widen(have, kind)
            assert final is not None
            if final != have:
                self._db.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}").format(
                        table, name, _sql_type(final), _cast(name, have, final)
                    )
                )
            columns.append((column, _cast(name, kind, final)))
        return columns


# Names and types ----------------------------------------------------------------------


def _derived_name(prefix: str, table: str) -> str:
    """`prefix + table`, shortened with a hash if PostgreSQL would cut it."""
    name = prefix + table
    if len(name) <= _MAX_IDENTIFIER_BYTES:  # identifiers are ASCII (check_identifier)
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"{name[: _MAX_IDENTIFIER_BYTES - 9]}_{digest}"


def _column_name(field: str) -> str:
    """The column of a record field: the field's name, shortened with a hash when too long."""
    try:
        encoded = field.encode()
    except UnicodeEncodeError:
        encoded = field.encode(errors="replace")
        field = ""  # not a usable name as is
    if field and len(encoded) <= _MAX_IDENTIFIER_BYTES and "\x00" not in field:
        return field
    digest = hashlib.sha1(encoded).hexdigest()[:8]
    head = encoded.replace(b"\x00", b"")[: _MAX_IDENTIFIER_BYTES - 9]
    return f"{head.decode(errors='ignore')}_{digest}"


def _sql_type(kind: ColumnType) -> sql.SQL:
    return sql.SQL(_PG_TYPES[kind])


def _cast(column: sql.Composable, source: ColumnType | None, target: ColumnType) -> sql.Composable:
    """An expression converting `column` from `source` (None: text, all null) to `target`."""
    if source == target or (source is None and target is ColumnType.TEXT):
        return column
    if target is ColumnType.JSON:
        return sql.SQL("to_jsonb({})").format(column)
    if target is ColumnType.TEXT and source is ColumnType.TIMESTAMP:
        return sql.SQL("(to_json({}) #>> '{{}}')").format(column)  # ISO 8601, as loaded
    return sql.SQL("{}::{}").format(column, _sql_type(target))


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (server errors: the primary message only)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return " ".join(text.split())


# COPY text format ---------------------------------------------------------------------

_NULL = "\\N"
_INT64 = 2**63
_CHUNK_ROWS = 5_000


class _Misfit(Exception):
    """A value the column's current type cannot hold: the batch is typed again."""


def _format_batch(
    pages: list[tuple[Sequence[SourceRecord], str]],
    columns: list[tuple[str, ColumnType | None]],
    known: frozenset[str],
    middle: str,
) -> Iterator[bytes]:
    """COPY text of the records, in chunks; `_Misfit` on a field or value not fitting.

    `middle` is the text of the columns shared by every row (run id, batch).
    Chunks are formatted a column at a time: a column's values are checked at once by
    C-level operations (their types, a join), and only an odd column goes value by value.
    """
    records: list[SourceRecord] = []
    extracted: list[str] = []
    for page, extracted_at in pages:
        records.extend(page)
        extracted.extend(repeat(extracted_at, len(page)))
    for start in range(0, len(records), _CHUNK_ROWS):
        chunk = records[start : start + _CHUNK_ROWS]
        datas = [record.data for record in chunk]
        if not set().union(*datas) <= known:
            raise _Misfit
        table: list[Iterable[str]] = [
            _text_column([record.id for record in chunk]),
            extracted[start : start + _CHUNK_ROWS],
            repeat(middle),
            map(str, range(start, start + len(chunk))),
        ]
        for field, kind in columns:
            table.append(_COLUMN_FORMATTERS[kind]([data.get(field) for data in datas]))
        text = "\n".join(map("\t".join, zip(*table, strict=False))) + "\n"
        try:
            yield text.encode()
        except UnicodeEncodeError:  # lone surrogates: PostgreSQL takes only valid UTF-8
            yield text.encode(errors="replace")


def _escape(text: str) -> str:
    if text.isprintable() and "\\" not in text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _float(value: float) -> str:
    if value - value == 0:
        return repr(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _float_text(value: float) -> str:
    text = _float(value)
    return text[:-2] if text.endswith(".0") else text  # as PostgreSQL's double::text


def _is_timestamp(text: str) -> bool:
    return all_timestamps([text])


def _json(value: Any) -> str:
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:  # integers beyond 64 bits, lone surrogates
        text = json.dumps(_plain(value), ensure_ascii=False)
    if "\\u0000" in text:  # jsonb cannot hold NUL either
        text = json.dumps(_plain(value), ensure_ascii=False)
    return text.replace("\\", "\\\\") if "\\" in text else text


def _plain(value: Any) -> Any:
    """`value` with only what jsonb takes: str keys, finite numbers, text without NUL."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode(errors="replace").decode()
        return value.replace("\x00", "")
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(_plain(k)) if k is not None else "null": _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return _plain(str(value))


def _convert(target: ColumnType, value: Any) -> str:
    """COPY text of a value whose type widens into `target`; `_Misfit` if it does not."""
    kind = value_type(value)
    if widen(target, kind) != target:
        raise _Misfit
    if target is ColumnType.JSON:
        return _json(value)
    if kind is ColumnType.BOOLEAN:
        if target is ColumnType.TEXT:
            return "true" if value else "false"
        return "t" if value else "f"
    if kind is ColumnType.BIGINT:
        return str(int(value))
    if kind is ColumnType.DOUBLE:
        return _float_text(float(value)) if target is ColumnType.TEXT else _float(float(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int):  # beyond 64 bits: text
        return str(int(value))
    return _escape(str(value))


def _text(value: Any) -> str:
    if type(value) is str:
        if value.isprintable() and "\\" not in value:
            return value
        return _escape(value)
    return _convert(ColumnType.TEXT, value)


def _bigint(value: Any) -> str:
    if type(value) is int and -_INT64 <= value < _INT64:
        return str(value)
    return _convert(ColumnType.BIGINT, value)


def _double(value: Any) -> str:
    if type(value) is float and value - value == 0:
        return repr(value)
    return _convert(ColumnType.DOUBLE, value)


def _boolean(value: Any) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    return _convert(ColumnType.BOOLEAN, value)


def _timestamp(value: Any) -> str:
    if type(value) is str and _is_timestamp(value):
        return value
    return _convert(ColumnType.TIMESTAMP, value)


def _each(values: list[Any], format: Callable[[Any], str]) -> list[str]:
    null = _NULL
    return [null if value is None else format(value) for value in values]


def _present(values: list[Any], types: set[type]) -> list[Any]:
    return [value for value in values if value is not None] if _NONE in types else values


def _text_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _STR_OR_NONE:
        joined = "".join(_present(values, types))
        if joined.isprintable() and "\\" not in joined:  # nothing to escape
            return [_NULL if value is None else value for value in values]
    return _each(values, _text)


def _bigint_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _INT_OR_NONE:
        present = _present(values, types)
        if not present or (min(present) >= -_INT64 and max(present) < _INT64):
            return [_NULL if value is None else str(value) for value in values]
    return _each(values, _bigint)


def _double_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _FLOAT_OR_NONE and math.isfinite(sum(_present(values, types))):
        return [_NULL if value is None else repr(value) for value in values]
    return _each(values, _double)


def _boolean_column(values: list[Any]) -> list[str]:
    if set(map(type, values)) <= _BOOL_OR_NONE:
        return list(map(_BOOLEAN_TEXT.__getitem__, values))
    return _each(values, _boolean)


def _timestamp_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _STR_OR_NONE and all_timestamps(_present(values, types)):
        return [_NULL if value is None else value for value in values]
    return _each(values, _timestamp)


def _json_column(values: list[Any]) -> list[str]:
    return _each(values, _json)


def _untyped_column(values: list[Any]) -> list[str]:
    if any(value is not None for value in values):
        raise _Misfit
    return [_NULL] * len(values)


_NONE = type(None)
_STR_OR_NONE = frozenset((str, _NONE))
_INT_OR_NONE = frozenset((int, _NONE))
_FLOAT_OR_NONE = frozenset((float, _NONE))
_BOOL_OR_NONE = frozenset((bool, _NONE))
_BOOLEAN_TEXT = {True: "t", False: "f", None: _NULL}

_COLUMN_FORMATTERS: dict[ColumnType | None, Callable[[list[Any]], list[str]]] = {
    None: _untyped_column,
    ColumnType.TEXT: _text_column,
    ColumnType.BIGINT: _bigint_column,
    ColumnType.DOUBLE: _double_column,
    ColumnType.BOOLEAN: _boolean_column,
    ColumnType.TIMESTAMP: _timestamp_column,
    ColumnType.JSON: _json_column,
}
