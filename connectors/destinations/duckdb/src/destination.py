"""The `duckdb` destination: typed tables in a DuckDB file, bulk-loaded through a staging table."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
from pydantic import ConfigDict, Field, field_validator

from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import WriteContext
from bizon_core.destination.sql import (
    BATCH_COLUMN,
    EXTRACTED_AT_COLUMN,
    ID_COLUMN,
    ISO_TIMESTAMP_PATTERN,
    LOADED_AT_COLUMN,
    ROW_COLUMN,
    RUN_ID_COLUMN,
    ColumnType,
    SqlDestinationConfig,
    widen,
)
from bizon_core.destination.sql_dialect import SqlDialect
from bizon_core.destination.sql_load import BIZON_PREFIX, StagedSqlDestination
from bizon_core.source.models import SourceRecord

logger = logging.getLogger(__name__)

NAME = "duckdb"
#: The bits `_raw_types` gives the values of each type, as `value_type` types them.
_TYPE_BITS = {
    1: ColumnType.BOOLEAN,
    2: ColumnType.BIGINT,
    4: ColumnType.DOUBLE,
    16: ColumnType.TIMESTAMP,
    32: ColumnType.TEXT,  # strings that are not timestamps, integers beyond 64 bits
    64: ColumnType.JSON,
}
#: Largest record read_json takes (DuckDB's default: 16 MB); it reserves twice this.
_MAX_RECORD_BYTES = 32 << 20

#: One process or one load at a time: loads of this process, by (file, schema, table).
_ACTIVE_LOADS: set[tuple[str, str, str]] = set()
_ACTIVE_LOADS_LOCK = threading.Lock()


class DuckDBDestinationConfig(SqlDestinationConfig):
    """`destination.config:` of the duckdb destination."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # One file per pipeline by default: DuckDB locks a whole file for one writing
    # process, so pipelines sharing a file could not run at the same time.
    path: str = Field(
        default=".bizon/{pipeline}.duckdb",
        description="The database file, created if missing; relative to the working "
        "directory; may use {pipeline}, {source} and {stream}.",
    )
    spool_dir: str | None = Field(
        default=None,
        description="Where the two batch files waiting for DuckDB are written (about 250 "
        "bytes a record, two batches at most); default: /dev/shm when it has 1 GB free (in "
        "memory: the database's fsyncs do not drag them to disk), else the temp directory.",
    )
    memory_limit: str = Field(
        default="128MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="DuckDB's memory limit (its default is 80% of the machine's RAM); "
        "beyond it, DuckDB spills to disk. A load streams, so it needs little.",
    )
    threads: int = Field(
        default=1,
        ge=1,
        description="DuckDB's worker threads. One loads batches as fast here as more do, "
        "since fetching and parsing pages keep another core busy, and holds less memory.",
    )
    schema_name: str = Field(
        default="main", alias="schema", description="Schema of the tables, created if missing."
    )
    batch_size: int = Field(
        default=125_000,
        gt=0,
        description="Records per staging write (each one a checkpoint). DuckDB writes an "
        "insert of 122,880 rows or more straight into the file, a smaller one through its "
        "log first: about twice the work.",
    )

    @field_validator("table")
    @classmethod
    def _not_a_bizon_table(cls, value: str | None) -> str | None:
        if value is not None and value.lower().startswith(BIZON_PREFIX):
            raise ValueError(f"table {value!r} is a name bizon uses for its own tables")
        return value

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        try:
            formatted = value.format(pipeline="p", source="s", stream="s")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "use only the placeholders {pipeline}, {source} and {stream} (write { as {{)"
            ) from None
        if not formatted.strip():
            raise ValueError("must name a file")
        return value


class DuckDBDialect(SqlDialect):
    """DuckDB's SQL, on one connection."""

    types = {
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.DOUBLE: "DOUBLE",
        ColumnType.TIMESTAMP: "TIMESTAMPTZ",
        ColumnType.TEXT: "VARCHAR",
        ColumnType.JSON: "JSON",
    }
    catalog_types = {
        "BOOLEAN": ColumnType.BOOLEAN,
        "BIGINT": ColumnType.BIGINT,
        "DOUBLE": ColumnType.DOUBLE,
        "TIMESTAMP WITH TIME ZONE": ColumnType.TIMESTAMP,
        "VARCHAR": ColumnType.TEXT,
        "JSON": ColumnType.JSON,
    }
    case_insensitive = True

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(statement, list(params)).fetchall()

    def rowcount(self, statement: str, params: Sequence[Any] = ()) -> int:
        row = self.con.execute(statement, list(params)).fetchone()
        return row[0] if row else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with suppress(duckdb.Error):  # a failed transaction may be rolled back already
                self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def relation_kind(self, schema: str, name: str) -> bool | None:
        kind = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_catalog ="
            " current_database() AND table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()
        return None if kind is None else kind[0] == "BASE TABLE"

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        return self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog"
            " = current_database() AND table_schema = ? AND table_name = ?"
            " ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()

    def timestamp_text(self, column: str) -> str:
        return f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%f+00:00')"

    def to_json(self, column: str) -> str:
        return f"to_json({column})"

    def last_versions(self, columns: str, stage: str) -> str:
        quote = self.quote
        return (
            f"SELECT {columns} FROM {stage} QUALIFY row_number() OVER (PARTITION BY"
            f" {quote(ID_COLUMN)} ORDER BY {quote(BATCH_COLUMN)} DESC, {quote(ROW_COLUMN)} DESC)"
            f" = 1 ORDER BY {quote(ROW_COLUMN)}"
        )


class DuckDBDestination(StagedSqlDestination):
    """Loads each stream into a typed table of a DuckDB file, atomically, in bulk.

    The table has the columns `_bizon_id`, `_bizon_extracted_at` (when the page was
    fetched), `_bizon_loaded_at` (when its batch was written) and `_bizon_run_id`, then
    one per top-level field of the records, typed BOOLEAN, BIGINT, DOUBLE, TIMESTAMPTZ
    (ISO-8601 strings; naive ones are UTC), VARCHAR or JSON (objects, arrays); a new
    field adds a column and a field whose values change type widens its column (BIGINT
    to DOUBLE, anything to VARCHAR, anything nested to JSON), so no record or value is
    ever refused or dropped. Records are written as JSON to a batch file; every
    `batch_size` records, a writer thread has DuckDB type the batch in SQL (as the
    shared `infer_columns` does) and bulk-load it into the staging table
    `_bizon_stage_<table>` (each batch a point a failed run resumes from), while the next
    pages are fetched. `commit()` then, in one transaction, replaces the table (the
    default for full refresh), merges by record id (incremental: the last version of a
    record wins, one row per id) or appends, per `write_disposition`, and records the run
    in `_bizon_loads`: readers see the table as it was or as it is after the run, never a
    part, and a run committed twice is loaded once. DuckDB lets one process at a time
    write a file, so a load into a file another process has open fails at once.
    """

    name = NAME
    writes_in_background = True
    driver_errors = (duckdb.Error, OSError)

    def __init__(self, config: DuckDBDestinationConfig, context: WriteContext):
        self.path = Path(
            config.path.format(
                pipeline=context.pipeline, source=context.source, stream=context.stream
            )
        )
        super().__init__(config, context, config.schema_name, DuckDBDialect)
        self.config: DuckDBDestinationConfig = config
        self._con: duckdb.DuckDBPyConnection | None = None
        self._load_key: tuple[str, str, str] | None = None
        #: Two batch files: one is filled while DuckDB loads the other in `_writer`.
        self._spools: list[IO[bytes]] = []
        self._spool_dir: str | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: tuple[_Batch, Future[None]] | None = None

    @staticmethod
    def get_config_class() -> type[DestinationConfig]:
        return DuckDBDestinationConfig

    # The protocol ---------------------------------------------------------------------

    def check_connection(self) -> tuple[bool, str | None]:
        try:
            con = self._open()
        except _CannotOpen as exc:
            return False, str(exc)
        try:
            con.execute("SELECT 1")
        except duckdb.Error as exc:
            return False, f"{self.path}: {_one_line(exc)}"
        finally:
            con.close()
        return True, None

    def begin(self, resume: dict[str, Any] | None) -> None:
        self._take_load()
        self._con = self._connect()
        self.sql = DuckDBDialect(self._con)
        with self._errors("cannot prepare the load"):
            self.sql.execute(f"CREATE SCHEMA IF NOT EXISTS {self.sql.quote(self.schema)}")
            self._prepare(resume)
        if self._already_committed:
            return
        try:
            self._spool_dir = tempfile.mkdtemp(prefix="bizon-duckdb-", dir=_spool_root(self.config))
            for name in ("a.json", "b.json"):
                self._spools.append(open(os.path.join(self._spool_dir, name), "w+b"))  # noqa: SIM115
        except OSError as exc:
            raise self._error("cannot create a temporary file", exc) from exc
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bizon-duckdb")

    def _connected(self) -> bool:
        return self._con is not None

    @contextmanager
    def _reading(self) -> Iterator[DuckDBDialect | None]:
        # Read-only, so a run writing the file meanwhile is not disturbed (or refuses us).
        try:
            con = duckdb.connect(str(self.path), read_only=True) if self.path.is_file() else None
        except duckdb.Error:
            con = None
        if con is None:
            yield None
            return
        try:
            yield DuckDBDialect(con)
        finally:
            con.close()

    def _database_label(self) -> str:
        return self.path.stem

    def finalize(self, success: bool) -> None:
        self._stop_writer()
        con, self._con = self._con, None
        try:
            for spool in self._spools:
                spool.close()
            self._spools = []
            if self._spool_dir is not None:
                shutil.rmtree(self._spool_dir, ignore_errors=True)
                self._spool_dir = None
            if con is not None:
                try:
                    con.close()
                except duckdb.Error as exc:  # what was committed is in the WAL already
                    logger.warning("%s", self._error("closing the database failed", exc))
        finally:
            self._release_load()

    # Connection, lock, errors ---------------------------------------------------------

    @property
    def _db(self) -> duckdb.DuckDBPyConnection:
        assert self._con is not None, "begin() was not called"
        return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            return self._open()
        except _CannotOpen as exc:
            raise self._error(str(exc)) from None

    def _open(self) -> duckdb.DuckDBPyConnection:
        """A connection to the file (its directory created), in UTC; `_CannotOpen` if not."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _CannotOpen(
                f"cannot create directory {directory}: {_why(exc, directory)}"
            ) from None
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise _CannotOpen(self._open_failure(exc)) from None
        try:
            con.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC
            con.execute("SET memory_limit = ?", [self.config.memory_limit])
            con.execute("SET threads = ?", [self.config.threads])
        except BaseException:
            con.close()
            raise
        return con

    def _open_failure(self, exc: duckdb.Error) -> str:
        message = _one_line(exc)
        if "Could not set lock" in message:
            holder = re.search(r"\(PID (\d+)\)", message)
            by = f"process {holder.group(1)} has it open" if holder else "it is locked"
            return (
                f"another load is using {self.path} ({by}; DuckDB lets one process at a "
                "time write a file)"
            )
        reason = re.sub(r'^(IO Error: )?Cannot open file "[^"]*": ', "", message)
        return f"cannot open {self.path}: {reason}"

    def _take_load(self) -> None:
        key = (os.path.realpath(self.path), self.schema.lower(), self.table.lower())
        with _ACTIVE_LOADS_LOCK:
            if key in _ACTIVE_LOADS:
                raise self._error(f"another load into this table of {self.path} is running")
            _ACTIVE_LOADS.add(key)
        self._load_key = key

    def _release_load(self) -> None:
        if self._load_key is not None:
            with _ACTIVE_LOADS_LOCK:
                _ACTIVE_LOADS.discard(self._load_key)
            self._load_key = None

    def _explain(self, exc: BaseException) -> str:
        return _one_line(exc)

    def _buffer(self, records: Sequence[SourceRecord]) -> None:
        """Append the page to the batch file: records as they are; DuckDB types them."""
        datas = [record.data for record in records]
        fields = set().union(*datas)
        names = self._names.columns
        if not fields <= names.keys():
            for field in dict.fromkeys(chain.from_iterable(datas)):  # in order of appearance
                self._names.column(field)
        extracted = datetime.now(UTC).isoformat()
        start = self._rows
        # Arrays, not objects: [id, row, extracted at, fields] costs half as much to make.
        if fields <= self._names.identity:
            rows = [(r.id, n, extracted, r.data) for n, r in enumerate(records, start)]
        else:
            rows = [
                (r.id, n, extracted, {names[k]: v for k, v in r.data.items()})
                for n, r in enumerate(records, start)
            ]
        try:
            text = orjson.dumps(rows, default=_json_default)
        except TypeError:  # integers beyond 64 bits, lone surrogates, keys not strings
            text = b"[" + b",".join(map(_dump_row, rows)) + b"]"
        spool = self._spools[0]
        spool.write(b"," if self._buffered else b"[")
        spool.write(memoryview(text)[1:-1])
        self._rows += len(records)

    def _write_batch(self, batch: int) -> None:
        """Hand the batch file to the writer thread; fill the other one meanwhile."""
        assert self._writer is not None, "begin() was not called"
        self._collect_batches(wait=True)  # the other file is free, staging's types known
        spool, other = self._spools
        spool.write(b"]")
        spool.flush()
        # Staging's record columns, then those of fields new since.
        columns = list(dict.fromkeys([*self._staged, *self._names.columns.values()]))
        job = _Batch(batch, spool, columns)
        self._inflight = job, self._writer.submit(self._load_batch, job)
        other.seek(0)
        other.truncate()
        self._spools = [other, spool]

    def _collect_batches(self, wait: bool) -> None:
        if self._inflight is None:
            return
        job, future = self._inflight
        if not wait and not future.done():
            return
        self._inflight = None
        self._staged = future.result()  # raises the batch's error, if it failed
        self._batch = job.number

    def _load_batch(self, job: _Batch) -> dict[str, ColumnType | None]:
        """Type a batch file and append it to staging, in one transaction (writer thread).

        DuckDB reads the batch twice: each field as raw JSON, to find the type of its
        values as `infer_columns` would; then, once staging's columns are widened to
        hold them, each field as its column's type (exact, since every value fits).
        It releases the GIL meanwhile, so this overlaps fetching the next pages.
        Returns staging's record columns and their types.
        """
        # Each record is [id, row, extracted at, fields]; json_transform(fields, shape)
        # splits the fields, shape being {"column": "DUCKDB TYPE", ...}.
        batch = (
            "read_json(?, format = 'array', records = 'false', columns = {'json': 'JSON[]'},"
            f" maximum_object_size = {_MAX_RECORD_BYTES})"
        )
        quote = self.sql.quote
        with self._errors(f"cannot write batch {job.number} to staging"), self.sql.transaction():
            types = self._evolve_stage(self._raw_types(job.columns, batch, job.spool.name))
            shape = {column: self.sql.type_of(types[column]) for column in job.columns}
            # The record's fields cannot take the bookkeeping columns' names (`_RESERVED`).
            self._db.execute(
                f"INSERT INTO {self._name(self.stage)} BY NAME SELECT"
                f" json[1] ->> '$' AS {quote(ID_COLUMN)},"
                f" CAST(json[2] AS BIGINT) AS {quote(ROW_COLUMN)},"
                f" CAST(json[3] ->> '$' AS TIMESTAMPTZ) AS {quote(EXTRACTED_AT_COLUMN)},"
                f" now() AS {quote(LOADED_AT_COLUMN)}, ? AS {quote(RUN_ID_COLUMN)},"
                f" ? AS {quote(BATCH_COLUMN)}{', d.*' if shape else ''}"
                f" FROM (SELECT json, json_transform(json[4], ?) AS d FROM {batch})",
                [self.context.run_id, job.number, _shape(shape), job.spool.name],
            )
        # Each batch ends in a part-filled row group, which DuckDB rewrites when it next
        # checkpoints: here, while pages are fetched, rather than when the file is closed.
        with self._errors(f"cannot checkpoint batch {job.number}"):
            self._db.execute("CHECKPOINT")
        return types

    def _raw_types(self, columns: list[str], batch: str, path: str) -> dict[str, ColumnType | None]:
        """The type of each column's values in the batch: `infer_columns`, in SQL.

        Each value is read as raw JSON and classed by its text (no JSON parsing): the
        bit of its type in `_TYPE_BITS`, OR-ed over the column. A JSON column holds
        anything and is not read; of a text column, only nested values matter.
        """
        classes: dict[str, str] = {}
        quote = self.sql.quote
        for column in columns:
            staged, name = self._staged.get(column), quote(column)
            text = f"CAST({name} AS VARCHAR)"
            if staged is ColumnType.JSON:
                continue
            if staged is ColumnType.TEXT:
                kind = f"CASE WHEN left({text}, 1) IN ('{{', '[') THEN 64 ELSE 32 END"
            else:
                kind = (
                    f"CASE left({text}, 1) WHEN '\"' THEN CASE WHEN regexp_full_match({text},"
                    f" '\"(?:{ISO_TIMESTAMP_PATTERN})\"') AND TRY_CAST({name} ->> '$' AS"
                    " TIMESTAMPTZ) IS NOT NULL THEN 16 ELSE 32 END"
                    " WHEN '{' THEN 64 WHEN '[' THEN 64 WHEN 't' THEN 1 WHEN 'f' THEN 1"
                    " WHEN 'n' THEN NULL"
                    f" ELSE CASE WHEN contains({text}, '.') OR contains(lower({text}), 'e') THEN 4"
                    f" WHEN TRY_CAST({text} AS BIGINT) IS NULL THEN 32 ELSE 2 END END"
                )
            classes[column] = f"bit_or({kind}) FILTER ({name} IS NOT NULL)"
        if not classes:
            return {}
        raw = _shape(dict.fromkeys(classes, "JSON"))
        row = self._db.execute(
            f"SELECT {', '.join(classes.values())} FROM (SELECT d.* FROM"
            f" (SELECT json_transform(json[4], ?) AS d FROM {batch}))",
            [raw, path],
        ).fetchone()
        assert row is not None
        types: dict[str, ColumnType | None] = {}
        for column, bits in zip(classes, row, strict=True):
            kind: ColumnType | None = None
            for bit, found in _TYPE_BITS.items():
                if bits and bits & bit:
                    kind = widen(kind, found)
            types[column] = kind
        return types

    def _stop_writer(self) -> None:
        """Stop the batch being written, if any (its transaction rolls back), and the thread."""
        if self._inflight is not None:
            future = self._inflight[1]
            self._inflight = None
            if not future.done() and self._con is not None:
                with suppress(duckdb.Error):
                    self._con.interrupt()
            wait([future])
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None


@dataclass(frozen=True)
class _Batch:
    """A batch file on its way to staging, and the record columns its records may have."""

    number: int
    spool: IO[bytes]
    columns: list[str]


class _CannotOpen(Exception):
    """The database file cannot be opened; the message says why, in one line."""


# Names and types ----------------------------------------------------------------------


def _shape(types: dict[str, str]) -> str:
    """json_transform's structure for records of these columns and DuckDB types."""
    return orjson.dumps(types or {"_": "JSON"}).decode()  # it takes no empty object


def _spool_root(config: DuckDBDestinationConfig) -> str | None:
    """The configured spool directory, else /dev/shm if roomy, else the temp directory.

    Containers often have a small /dev/shm (Docker: 64 MB): it is used only with 1 GB free.
    """
    if config.spool_dir is not None:
        return config.spool_dir
    shm = "/dev/shm"
    try:
        usable = os.access(shm, os.W_OK | os.X_OK) and shutil.disk_usage(shm).free >= 1 << 30
    except OSError:
        usable = False
    return shm if usable else None


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    text = text.split(" See also https://", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def _why(exc: OSError, directory: Path) -> str:
    """Why a directory cannot be created: the first existing ancestor that is not one."""
    for parent in (directory, *directory.parents):
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is not a directory"
            break
    return exc.strerror or str(exc)


# JSON of the rows ---------------------------------------------------------------------

_INT64 = 2**63


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return value.decode(errors="replace")
    return str(value)


def _dump_row(row: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(row, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # integers beyond 64 bits, lone surrogates (replaced)
        return json.dumps(_plain(row), ensure_ascii=False, allow_nan=False).encode()


def _plain(value: Any) -> Any:
    """`value` with only what JSON holds: str keys, finite numbers, valid Unicode."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode(errors="replace").decode()
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # beyond 64 bits as text: JSON readers make them doubles
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_plain(k if isinstance(k, str) else str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return _plain(_json_default(value))
