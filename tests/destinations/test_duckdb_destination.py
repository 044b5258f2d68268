"""The `duckdb` destination, driven by the real runner into real DuckDB files.

Pipelines read the `paged` test source from the local fake API (25 users, 10 per page)
and load a DuckDB file under the test's directory; results are read back with duckdb.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from bizon_core.config import Pipeline, load_pipeline
from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.destination.sql import ColumnType, infer_columns
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import ConfigError, DestinationError, SourceError, StateError
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord
from bizon_core.sync.runner import run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import Checkpoint, StreamKey, SuccessfulRun

KEY = StreamKey("test_pipeline", "paged", "users")
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
#: How DuckDB's catalog names the columns of each type.
DUCKDB_TYPES = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.TIMESTAMP: TIMESTAMPTZ,
    ColumnType.TEXT: "VARCHAR",
    ColumnType.JSON: "JSON",
}
MakePipeline = Callable[..., Pipeline]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse" / "bizon.duckdb"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.db")


@pytest.fixture
def pipeline(server, write_pipeline, db: Path) -> MakePipeline:
    """A pipeline into `db`, one staging batch (and checkpoint) per page of 10 users."""

    def make(
        sync_mode: str = "full_refresh", fail_on_page: int | None = None, **config: Any
    ) -> Pipeline:
        source: dict[str, Any] = {"base_url": server.url, "sync_mode": sync_mode}
        if fail_on_page is not None:
            source["fail_on_page"] = fail_on_page
        destination = {"name": "duckdb", "config": {"path": str(db), "batch_size": 10, **config}}
        return load_pipeline(write_pipeline(source, destination))

    return make


class FlakyStore(SqliteStateStore):
    """A state store that dies at a chosen step, like a process killed there."""

    def __init__(self, path: Path, fail_checkpoint: int | None = None, fail_commit: bool = False):
        super().__init__(path)
        self.fail_checkpoint, self.fail_commit = fail_checkpoint, fail_commit
        self.checkpoints = 0

    def checkpoint(self, key: StreamKey, checkpoint: Checkpoint) -> None:
        self.checkpoints += 1
        if self.checkpoints == self.fail_checkpoint:
            raise StateError("crash before checkpoint")
        super().checkpoint(key, checkpoint)

    def commit(self, key: StreamKey, run: SuccessfulRun) -> None:
        if self.fail_commit:
            raise StateError("crash before the cursor moved")
        super().commit(key, run)


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table(db: Path, name: str = "users") -> list[tuple]:
    return query(db, f"SELECT * FROM main.{name} ORDER BY _bizon_id")


def columns(db: Path, name: str = "users", schema: str = "main") -> dict[str, str]:
    return dict(
        query(
            db,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        )
    )


def ids(db: Path) -> list[int]:
    return [row[0] for row in query(db, "SELECT id FROM main.users ORDER BY id")]


def duplicates(db: Path) -> int:
    return query(db, "SELECT count(*) - count(DISTINCT _bizon_id) FROM main.users")[0][0]


def test_columns_are_typed_and_hold_the_source_values(pipeline, api, store, db):
    api.upsert("users", {"id": 4, "profile": {"plan": "pro", "seats": [1, 2]}})
    result = run_stream(pipeline(), "users", store)

    assert columns(db) == {
        "_bizon_id": "VARCHAR",
        "_bizon_extracted_at": TIMESTAMPTZ,
        "_bizon_loaded_at": TIMESTAMPTZ,
        "_bizon_run_id": "VARCHAR",
        "id": "BIGINT",
        "name": "VARCHAR",
        "email": "VARCHAR",
        "country": "VARCHAR",
        "age": "BIGINT",
        "score": "DOUBLE",
        "active": "BOOLEAN",
        "tags": "JSON",
        "created_at": TIMESTAMPTZ,
        "updated_at": TIMESTAMPTZ,
        "profile": "JSON",
    }
    fields = ["id", "name", "email", "country", "age", "score", "active"]
    rows = query(
        db,
        f"SELECT _bizon_id, {', '.join(fields)}, tags, created_at, updated_at, profile,"
        " _bizon_run_id, _bizon_loaded_at FROM main.users ORDER BY id",
    )
    source = api.records("users")
    assert len(rows) == len(source) == 25
    for row, record in zip(rows, source, strict=True):
        assert row[0] == str(record["id"])
        assert list(row[1:8]) == [record[f] for f in fields]
        assert json.loads(row[8]) == record["tags"]
        assert row[9] == datetime.fromisoformat(record["created_at"])
        assert row[10] == datetime.fromisoformat(record["updated_at"])
        assert (json.loads(row[11]) if row[11] else None) == record.get("profile")
        assert row[12] == result.run.run_id
        assert result.run.started_at < row[13] <= datetime.now(UTC)

    # describe() tells the real table, as DuckDB does.
    assert result.destination == {
        "table_name": "bizon.main.users",
        "columns": [{"name": n, "type": t} for n, t in columns(db).items()],
        "row_count": 25,
        "loaded_rows": 25,  # by this run, as _bizon_loads records it
    }


def test_a_failed_full_refresh_leaves_the_table_as_it_was(pipeline, api, store, db):
    run_stream(pipeline(), "users", store)
    before, schema, committed = table(db), columns(db), store.last_success(KEY)

    api.upsert("users", {"id": 1, "name": "changed", "extra": True})
    with pytest.raises(SourceError, match="boom on page 2"):
        run_stream(pipeline(fail_on_page=2), "users", store)
    assert table(db) == before
    assert columns(db) == schema
    assert store.last_success(KEY) == committed
    # The staged page stays for the next attempt, which resumes after it.
    assert query(db, "SELECT count(*) FROM main._bizon_stage_users") == [(10,)]

    result = run_stream(pipeline(), "users", store)
    assert result.resumed_from is not None and result.resumed_from.records == 10
    assert ids(db) == list(range(1, 26))
    assert query(db, "SELECT name, extra FROM main.users WHERE id = 1") == [("changed", True)]
    assert query(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_bizon_stage%'")[
        0
    ] == (0,)


def test_a_commit_failing_midway_leaves_the_table_as_it_was(pipeline, api, store, db):
    first = run_stream(pipeline(), "users", store)
    before = table(db)
    # Recording the load is commit's last step, after the swap: make it fail in DuckDB.
    loads = "main._bizon_loads"
    for statement in (
        f"ALTER TABLE {loads} RENAME TO kept_loads",
        f"CREATE TABLE {loads} AS SELECT * FROM main.kept_loads LIMIT 0",
        f"ALTER TABLE {loads} ADD COLUMN never_null VARCHAR",
        f"ALTER TABLE {loads} ALTER COLUMN never_null SET NOT NULL",
    ):
        query(db, statement)

    api.upsert("users", {"id": 2, "name": "changed"})
    with pytest.raises(
        DestinationError,
        match=r"^destination 'duckdb' table main\.users: cannot commit the load: .*never_null",
    ):
        run_stream(pipeline(), "users", store)
    assert table(db) == before
    assert store.last_success(KEY).run_id == first.run.run_id
    assert query(db, "SELECT count(*) FROM main._bizon_stage_users") == [(25,)]

    query(db, f"DROP TABLE {loads}")
    query(db, f"ALTER TABLE main.kept_loads RENAME TO {loads.split('.')[1]}")
    result = run_stream(pipeline(), "users", store)
    assert result.resumed_from is not None
    assert ids(db) == list(range(1, 26))
    assert query(db, "SELECT name FROM main.users WHERE id = 2") == [("changed",)]


def test_incremental_merge_replaces_changed_rows(pipeline, api, store, db):
    incremental = pipeline("incremental")
    first = run_stream(incremental, "users", store)
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    api.upsert("users", {"id": 26, "name": "new"})
    second = run_stream(incremental, "users", store)

    assert second.records == 2
    rows = query(db, "SELECT id, name, _bizon_run_id FROM main.users ORDER BY id")
    assert [row[0] for row in rows] == list(range(1, 27))
    assert rows[0][2] == first.run.run_id
    assert rows[2] == (3, "changed", second.run.run_id)
    assert rows[25] == (26, "new", second.run.run_id)
    assert duplicates(db) == 0
    assert query(db, 'SELECT run_id, "rows" FROM main._bizon_loads ORDER BY committed_at') == [
        (first.run.run_id, 25),
        (second.run.run_id, 2),
    ]


def test_append_adds_every_row(pipeline, api, store, db):
    appending = pipeline("incremental", write_disposition="append")
    run_stream(appending, "users", store)
    name = api.get("users", 3)["name"]
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    run_stream(appending, "users", store)

    assert query(db, "SELECT count(*) FROM main.users") == [(26,)]
    assert query(db, "SELECT name FROM main.users WHERE id = 3 ORDER BY _bizon_loaded_at") == [
        (name,),
        ("changed",),
    ]


def test_new_fields_and_changing_types_evolve_the_columns(pipeline, api, store, db):
    # Within a run: `level` is an int on page 1, a float on page 2, a string on page 3;
    # `nickname` appears on page 3. Each page is its own staging batch.
    def level(i: int) -> int | float | str:
        return i if i <= 10 else i + 0.5 if i <= 20 else f"L{i}"

    for i in range(1, 26):
        api.upsert(
            "users", {"id": i, "level": level(i), **({"nickname": f"n{i}"} if i > 20 else {})}
        )
    incremental = pipeline("incremental")
    run_stream(incremental, "users", store)

    assert columns(db)["level"] == "VARCHAR"
    assert list(columns(db))[-2:] == ["level", "nickname"]
    rows = query(db, "SELECT id, level, nickname FROM main.users ORDER BY id")
    for i, loaded, nickname in rows:
        expected = level(i)
        assert loaded == expected if isinstance(expected, str) else float(loaded) == expected
        assert nickname == (f"n{i}" if i > 20 else None)

    # A later run: a new (nested) field, and an int column receiving a float.
    api.upsert("users", {"id": 2, "plan": {"tier": 1}, "age": 30.5})
    run_stream(incremental, "users", store)
    after = columns(db)
    assert (after["plan"], after["age"]) == ("JSON", "DOUBLE")
    ages = dict(query(db, "SELECT id, age FROM main.users"))
    assert ages == {r["id"]: r["age"] for r in api.records("users")}
    assert ages[2] == 30.5
    assert query(db, "SELECT plan FROM main.users WHERE id = 2") == [('{"tier":1}',)]
    assert query(db, "SELECT count(*), count(name), count(level) FROM main.users") == [(25, 25, 25)]


@pytest.mark.parametrize("disposition", ["replace", "append"])
def test_a_crash_between_a_staged_batch_and_its_checkpoint_resumes_exactly(
    pipeline, api, store, db, tmp_path, disposition
):
    flaky = FlakyStore(tmp_path / "state.db", fail_checkpoint=2)
    loading = pipeline(write_disposition=disposition)
    with pytest.raises(StateError, match="crash before checkpoint"):
        run_stream(loading, "users", flaky)
    # Batch 2 reached staging, its checkpoint did not (batch 3, written in the
    # background meanwhile, may have too).
    staged = "SELECT DISTINCT _bizon_batch FROM main._bizon_stage_users ORDER BY 1"
    assert query(db, staged)[:2] == [(1,), (2,)]

    result = run_stream(loading, "users", store)
    assert result.resumed_from is not None and result.resumed_from.records == 10
    loaded = query(db, "SELECT id, name, email, updated_at FROM main.users ORDER BY id")
    source = [
        (r["id"], r["name"], r["email"], datetime.fromisoformat(r["updated_at"]))
        for r in api.records("users")
    ]
    assert loaded == source
    assert duplicates(db) == 0


@pytest.mark.parametrize("batch_size", [10, 100_000])  # with and without mid-run checkpoints
@pytest.mark.parametrize("disposition", ["merge", "append"])
def test_a_crash_between_the_tables_commit_and_the_cursors_is_harmless(
    pipeline, api, store, db, tmp_path, disposition, batch_size
):
    incremental = pipeline("incremental", write_disposition=disposition, batch_size=batch_size)
    with pytest.raises(StateError, match="crash before the cursor moved"):
        run_stream(incremental, "users", FlakyStore(tmp_path / "state.db", fail_commit=True))
    assert ids(db) == list(range(1, 26))  # the table committed, the cursor did not
    assert store.last_success(KEY) is None

    rerun = run_stream(incremental, "users", store)
    assert rerun.resumed_from is not None
    assert ids(db) == list(range(1, 26))
    assert duplicates(db) == 0
    assert query(db, "SELECT run_id FROM main._bizon_loads") == [(rerun.run.run_id,)]
    assert store.last_success(KEY) == rerun.run

    # The cursor now agrees with the table: the next run fetches only what changed.
    api.upsert("users", {**api.get("users", 5), "name": "changed"})
    after = run_stream(incremental, "users", store)
    assert after.records == 1
    assert query(db, "SELECT count(*) FROM main.users") == [(25 if disposition == "merge" else 26,)]


def test_a_table_name_that_is_not_an_identifier_is_refused_when_loading_the_config(
    write_pipeline, db
):
    destination = {"name": "duckdb", "config": {"path": str(db), "table": "users; drop"}}
    with pytest.raises(
        ConfigError, match=r"destination\.config\.table: table 'users; drop' is not"
    ):
        load_pipeline(write_pipeline({"base_url": "http://localhost"}, destination))
    bizon_own = {"name": "duckdb", "config": {"table": "_bizon_loads"}}
    with pytest.raises(ConfigError, match=r"destination\.config\.table: table '_bizon_loads'"):
        load_pipeline(write_pipeline({"base_url": "http://localhost"}, bizon_own))


_HOLD = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute('SELECT 1');"
    " print('holding', flush=True); sys.stdin.read()"
)


def test_a_file_another_process_writes_fails_at_once_and_changes_nothing(pipeline, api, store, db):
    first = run_stream(pipeline(), "users", store)
    before = table(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        api.upsert("users", {"id": 1, "name": "changed"})
        with pytest.raises(
            DestinationError,
            match=r"^destination 'duckdb' table main\.users: another load is using "
            + re.escape(f"{db} (process {holder.pid} has it open"),
        ):
            run_stream(pipeline(), "users", store)
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=30)
    assert store.last_success(KEY) == first.run
    assert table(db) == before


def test_schema_and_path_placeholders(pipeline, store, tmp_path):
    path = str(tmp_path / "{pipeline}" / "{stream}.duckdb")
    result = run_stream(pipeline(path=path, schema="raw", table="people"), "users", store)
    db = tmp_path / "test_pipeline" / "users.duckdb"
    assert result.destination["table_name"] == "users.raw.people"
    assert query(db, "SELECT count(*) FROM raw.people") == [(25,)]
    assert list(columns(db, "people", "raw"))[:2] == ["_bizon_id", "_bizon_extracted_at"]


# The destination fed directly, for values a JSON API rarely sends --------------------


def make_destination(
    path: Path, sync_mode: SourceSyncModes = SourceSyncModes.FULL_REFRESH, **config: Any
) -> AbstractDestination:
    destination_class = load_connector_class(get_connector(ConnectorKind.DESTINATION, "duckdb"))
    settings = destination_class.get_config_class().model_validate({"path": str(path), **config})
    run_id = uuid.uuid4().hex
    context = WriteContext("pipe", "src", "things", sync_mode, run_id, datetime.now(UTC))
    return destination_class(settings, context)


def load(destination: AbstractDestination, *pages: list[dict[str, Any]]) -> None:
    destination.begin(None)
    try:
        for page in pages:
            destination.write([SourceRecord(id=row.pop("key"), data=row) for row in page])
        destination.commit()
    finally:
        destination.finalize(True)


def test_odd_values_and_names_load_without_loss(tmp_path):
    db = tmp_path / "odd.duckdb"
    load(
        make_destination(db, batch_size=2),
        [
            {"key": 1, "big": 1, "when": "2026-01-01 10:00", "_bizon_id": "mine", "A": 1},
            {"key": 2, "big": 2**70, "when": "2026-01-01T10:00:00.123456789Z", "a": 2},
        ],
        [
            {"key": 3, "when": "2026-01-01T10:00:00+0530", "": "empty", "nested": {1: "x"}},
            {"key": 4, "when": "2026-02-30T00:00:00", "text": "bad \ud800 surrogate"},
            {"key": 1, "big": 5, "late": None},  # a second version of record 1: the last wins
        ],
        [{"key": 5, "late": 7, "nothing": None}],
    )
    assert columns(db, "things") == {
        "_bizon_id": "VARCHAR",
        "_bizon_extracted_at": TIMESTAMPTZ,
        "_bizon_loaded_at": TIMESTAMPTZ,
        "_bizon_run_id": "VARCHAR",
        "big": "VARCHAR",  # beyond 64 bits: text, digits kept
        "when": "VARCHAR",  # 2026-02-30 is no date: text, as the source wrote it
        "_bizon_id_1": "VARCHAR",  # a field named like a bizon column
        "A": "BIGINT",
        "a_1": "BIGINT",  # DuckDB names ignore case
        "_": "VARCHAR",
        "nested": "JSON",
        "text": "VARCHAR",
        "late": "BIGINT",  # typed by its first value, not by the nulls before it
        "nothing": "VARCHAR",
    }
    rows = query(
        db,
        'SELECT _bizon_id, big, "when", _bizon_id_1, "A", a_1, "_", nested, text, late'
        " FROM main.things ORDER BY _bizon_id",
    )
    assert rows == [
        ("1", "5", None, None, None, None, None, None, None, None),
        # loaded as a timestamp first, then widened to text: ISO 8601, in UTC
        (
            "2",
            str(2**70),
            "2026-01-01T10:00:00.123456+00:00",
            None,
            None,
            2,
            None,
            None,
            None,
            None,
        ),
        ("3", None, "2026-01-01T10:00:00+0530", None, None, None, "empty", '{"1":"x"}', None, None),
        ("4", None, "2026-02-30T00:00:00", None, None, None, None, None, "bad ? surrogate", None),
        ("5", None, None, None, None, None, None, None, None, 7),
    ]


def test_merge_keeps_the_last_version_of_a_record_written_twice(tmp_path):
    db = tmp_path / "merge.duckdb"
    incremental = SourceSyncModes.INCREMENTAL
    load(make_destination(db, incremental), [{"key": 1, "n": 1}, {"key": 2, "n": 2}])
    load(
        make_destination(db, incremental, batch_size=2),
        [{"key": 2, "n": 20}, {"key": 3, "n": 3}, {"key": 2, "n": 21}],  # twice in one batch
        [{"key": 3, "n": 30, "flag": True}],  # and again in the next
    )
    assert query(db, "SELECT _bizon_id, n, flag FROM main.things ORDER BY _bizon_id") == [
        ("1", 1, None),
        ("2", 21, None),
        ("3", 30, True),
    ]
    assert query(db, 'SELECT "rows" FROM main._bizon_loads ORDER BY committed_at') == [(2,), (2,)]


def test_records_without_fields_load_and_later_fields_add_columns(tmp_path):
    db = tmp_path / "bare.duckdb"
    load(make_destination(db, batch_size=1), [{"key": 1}], [{"key": 2, "x": 5}])
    assert query(db, "SELECT _bizon_id, x FROM main.things ORDER BY 1") == [("1", None), ("2", 5)]
    assert columns(db, "things")["x"] == "BIGINT"


def test_batch_files_go_to_the_spool_dir_and_are_removed(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    destination = make_destination(tmp_path / "spool.duckdb", spool_dir=str(spool))
    destination.begin(None)
    destination.write([SourceRecord(id="1", data={"n": 1})])
    assert [p.name.startswith("bizon-duckdb-") for p in spool.iterdir()] == [True]
    destination.commit()
    destination.finalize(True)
    assert list(spool.iterdir()) == []

    missing = make_destination(tmp_path / "spool.duckdb", spool_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DestinationError, match=r"table main\.things: cannot create a temporary"):
        missing.begin(None)
    missing.finalize(False)


def test_a_second_load_into_the_same_table_fails_at_once(tmp_path):
    db = tmp_path / "busy.duckdb"
    first, second = make_destination(db), make_destination(db)
    first.begin(None)
    try:
        with pytest.raises(
            DestinationError,
            match=r"^destination 'duckdb' table main\.things: another load into this table",
        ):
            second.begin(None)
        second.finalize(False)
        first.write([SourceRecord(id="1", data={"n": 1})])
        first.commit()
    finally:
        first.finalize(True)
    assert query(db, "SELECT n FROM main.things") == [(1,)]


def test_check_connection(tmp_path):
    fresh = tmp_path / "not" / "yet" / "bizon.duckdb"
    assert make_destination(fresh).check_connection() == (True, None)
    assert fresh.exists()

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    ok, reason = make_destination(blocker / "sub" / "bizon.duckdb").check_connection()
    assert ok is False
    assert reason == f"cannot create directory {blocker / 'sub'}: {blocker} is not a directory"

    directory = tmp_path / "a_directory.duckdb"
    directory.mkdir()
    destination = make_destination(directory)
    with pytest.raises(
        DestinationError,
        match=r"^destination 'duckdb' table main\.things: cannot open .*a_directory\.duckdb: ",
    ):
        destination.begin(None)
    destination.finalize(False)


def test_duckdb_types_a_batch_as_infer_columns_does(tmp_path):
    """DuckDB types each batch in SQL; the types must be those of the shared model."""
    texts = [
        "2026-01-01T00:00",
        "2026-01-01 00:00:00",
        "2026-01-01T00:00:00.1Z",
        "2026-01-01T00:00:00.123456789+05:30",
        "2026-01-01T00:00:00-0800",
        "2026-02-30T00:00:00",  # no such day
        "2026-01-01T24:00:00",  # no such hour
        "0000-01-01T00:00:00",  # no year 0
        "2026-01-01T00:00\n",
        "\uff12026-01-01T00:00",  # a full-width digit
        "2026-01-01",
        "plain text",
        "",
    ]
    numbers = [0, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, 2**64, 1.5, 1e300, True, False]
    others = [{"a": 1}, [1], (1,), {"s"}, datetime(2026, 1, 1), Decimal("1.5"), None]
    samples = [[t] for t in texts] + [[v] for v in numbers + others]
    samples += [texts[:5], texts[:6], [1, 2.5], [1, 2**64], [None, "2026-01-01T00:00"]]
    samples += [[1.5, float("nan")], [True, 1], ["x", {"a": 1}], [5, "2026-01-01T00:00"]]
    samples += [["x", [1]], [5, "x", {"a": 1}], ["2026-01-01T00:00", "x"], [1.5, 2, "x"]]
    for n, values in enumerate(samples):
        expected = infer_columns({"v": v} for v in values)["v"] or ColumnType.TEXT
        rows = [{"key": k, "v": v} for k, v in enumerate(values)]
        # One batch, and (for several values) a batch each: a column typed by an
        # earlier batch widens as the whole would be typed.
        for batch_size in [len(rows), 1][: len(rows)]:
            db = tmp_path / f"types{n}_{batch_size}.duckdb"
            load(make_destination(db, batch_size=batch_size), *[[dict(r)] for r in rows])
            assert columns(db, "things")["v"] == DUCKDB_TYPES[expected], (values, batch_size)


def test_a_full_refresh_table_holds_this_runs_columns_only(pipeline, api, store, db):
    api.upsert("users", {"id": 1, "address": {"city": "Paris"}})
    run_stream(pipeline(), "users", store)
    assert "address" in columns(db)
    record = api.get("users", 1)
    del record["address"]
    api.add("users", [record])
    run_stream(pipeline(), "users", store)
    assert "address" not in columns(db)
    assert ids(db) == list(range(1, 26))
