"""The `postgres` destination against a real PostgreSQL server, driven by the real runner."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bizon_core.config import Pipeline, load_pipeline
from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import ConfigError, DestinationError, SourceError, StateError
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord
from bizon_core.sync.runner import RunResult, run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey

KEY = StreamKey("test_pipeline", "paged", "users")
IDS = [str(i) for i in range(1, 26)]


class CrashingStore(SqliteStateStore):
    """A real state store that fails once at a chosen step, as a crash there would."""

    def __init__(self, path: Path, fail_on: str = ""):
        super().__init__(path)
        self.fail_on = fail_on
        self.checkpoints = 0

    def checkpoint(self, key, checkpoint):
        self.checkpoints += 1
        if self.fail_on == "checkpoint" and self.checkpoints == 2:
            self.fail_on = ""
            raise RuntimeError("crash between a staging write and its checkpoint")
        super().checkpoint(key, checkpoint)

    def commit(self, key, run):
        if self.fail_on == "commit":
            self.fail_on = ""
            raise StateError("crash between the destination's commit and the cursor's")
        super().commit(key, run)


@pytest.fixture
def store(tmp_path: Path) -> CrashingStore:
    return CrashingStore(tmp_path / "state.db")


@pytest.fixture
def pipeline(server, write_pipeline, pg: Any) -> Callable[..., Pipeline]:
    """A `paged` -> `postgres` pipeline: a dict of destination settings, source keywords."""

    def make(destination: dict[str, Any] | None = None, **source: Any) -> Pipeline:
        path = write_pipeline(
            {"base_url": server.url, **source},
            {"name": "postgres", "config": pg.config(**(destination or {}))},
        )
        return load_pipeline(path)

    return make


def run(pipeline: Pipeline, store: SqliteStateStore) -> RunResult:
    return run_stream(pipeline, "users", store)


def table(pg: Any, name: str = "users") -> list[tuple]:
    """Every row and column of a table, in a stable order."""
    return pg.query(f'SELECT * FROM "{name}" ORDER BY _bizon_id, _bizon_run_id')


def ids(pg: Any) -> list[str]:
    rows = pg.query("SELECT _bizon_id FROM users ORDER BY _bizon_id::int")
    return [row[0] for row in rows]


def test_records_land_in_typed_columns(api, pipeline, pg, store):
    api.upsert("users", {"id": 1, "address": {"city": "Paris", "zip": "75001"}})
    result = run(pipeline(), store)

    assert pg.columns("users") == {
        "_bizon_id": "text",
        "_bizon_extracted_at": "timestamp with time zone",
        "_bizon_loaded_at": "timestamp with time zone",
        "_bizon_run_id": "text",
        "id": "bigint",
        "name": "text",
        "email": "text",
        "country": "text",
        "age": "bigint",
        "score": "double precision",
        "active": "boolean",
        "tags": "jsonb",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
        "address": "jsonb",
    }
    rows = pg.query(
        "SELECT _bizon_id, _bizon_run_id, id, score, active, tags, created_at, address"
        " FROM users ORDER BY id"
    )
    assert [row[0] for row in rows] == IDS
    assert {row[1] for row in rows} == {result.run.run_id}
    first = rows[0]
    assert first[2:] == (
        1,
        3.7,
        True,
        ["vip", "new"],
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        {"city": "Paris", "zip": "75001"},
    )
    assert rows[1][7] is None
    assert pg.tables() == {"users", "_bizon_loads"}  # no staging table left
    assert pg.query('SELECT "table", run_id, "rows" FROM _bizon_loads') == [
        ("users", result.run.run_id, 25)
    ]
    # Loaded when its batch was written: after the run started, not after the commit.
    loaded_at = "SELECT DISTINCT u._bizon_loaded_at <= l.committed_at FROM users u, _bizon_loads l"
    assert pg.query(loaded_at) == [(True,)]
    assert pg.query("SELECT min(_bizon_loaded_at) FROM users")[0][0] >= result.run.started_at
    assert pg.query("SELECT count(*) FROM users WHERE _bizon_loaded_at IS NULL") == [(0,)]
    described = result.destination
    assert described["table_name"] == f"{pg.server.database}.{pg.name}.users"
    assert described["row_count"] == 25
    assert described["columns"] == [
        {"name": name, "type": kind} for name, kind in pg.columns("users").items()
    ]
    assert pg.server.password not in str(described)


def test_a_failed_full_refresh_leaves_the_previous_table_as_it_was(api, pipeline, pg, store):
    run(pipeline(), store)
    before, columns, committed = table(pg), pg.columns("users"), store.last_success(KEY)
    api.upsert("users", {"id": 1, "name": "changed", "nickname": "ada"})

    with pytest.raises(SourceError, match="boom on page 2"):
        run(pipeline({"batch_size": 10}, fail_on_page=2), store)
    assert table(pg) == before
    assert pg.columns("users") == columns
    assert store.last_success(KEY) == committed

    resumed = run(pipeline({"batch_size": 10}), store)
    assert resumed.resumed_from is not None
    assert ids(pg) == IDS
    assert pg.query("SELECT name, nickname FROM users WHERE id = 1") == [("changed", "ada")]


def test_a_commit_that_fails_inside_its_transaction_changes_nothing(api, pipeline, pg, store):
    run(pipeline(), store)
    before, columns, committed = table(pg), pg.columns("users"), store.last_success(KEY)
    api.upsert("users", {"id": 1, "name": "changed", "nickname": "ada"})
    # The last statement of the commit fails, after the new table was swapped in.
    pg.query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON _bizon_loads"
        " FOR EACH ROW EXECUTE FUNCTION refuse()"
    )

    with pytest.raises(DestinationError, match="cannot commit the load: injected failure"):
        run(pipeline(), store)
    assert table(pg) == before
    assert pg.columns("users") == columns
    assert store.last_success(KEY) == committed
    assert pg.tables() == {"users", "_bizon_loads", "_bizon_stage_users"}  # kept to resume

    pg.query("DROP TRIGGER refuse ON _bizon_loads")
    run(pipeline(), store)
    assert ids(pg) == IDS
    assert pg.query("SELECT name, nickname FROM users WHERE id = 1") == [("changed", "ada")]
    assert pg.tables() == {"users", "_bizon_loads"}


def test_a_full_refresh_table_holds_this_runs_columns_only(api, pipeline, pg, store):
    api.upsert("users", {"id": 1, "address": {"city": "Paris"}})
    run(pipeline(), store)
    assert "address" in pg.columns("users")
    record = api.get("users", 1)
    del record["address"]
    api.add("users", [record])
    run(pipeline(), store)
    assert "address" not in pg.columns("users")
    assert ids(pg) == IDS


def test_an_incremental_merge_replaces_changed_rows(api, pipeline, pg, store):
    incremental = pipeline(sync_mode="incremental")
    first = run(incremental, store)
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    api.upsert("users", {"id": 26, "name": "new"})

    second = run(incremental, store)
    assert second.records == 2
    assert ids(pg) == [*IDS, "26"]
    rows = dict(pg.query("SELECT id, name FROM users"))
    assert (rows[3], rows[26], rows[4]) == ("changed", "new", "Barbara 4")
    runs = dict(pg.query("SELECT id, _bizon_run_id FROM users WHERE id IN (1, 3)"))
    assert runs == {1: first.run.run_id, 3: second.run.run_id}
    assert pg.query("SELECT _bizon_id FROM users GROUP BY 1 HAVING count(*) > 1") == []


@pytest.mark.parametrize("mode", [SourceSyncModes.INCREMENTAL, SourceSyncModes.FULL_REFRESH])
def test_the_last_version_of_a_record_loaded_twice_in_one_run_wins(pg, mode):
    """Directly through the destination: within a batch and across batches."""
    destination = _destination(pg, mode, batch_size=2)
    destination.begin(None)
    destination.write([_record(1, "a"), _record(2, "a")])
    destination.write([_record(1, "b"), _record(3, "a"), _record(1, "c")])
    destination.commit()
    destination.finalize(True)
    assert pg.query("SELECT id, v FROM users ORDER BY id") == [(1, "c"), (2, "a"), (3, "a")]


def test_awkward_values_and_field_names_are_loaded_as_they_are(pg):
    """Directly through the destination: what COPY's text format must escape, and more."""
    long_name = "field_" + "x" * 70
    destination = _destination(pg, SourceSyncModes.FULL_REFRESH)
    destination.begin(None)
    destination.write(
        [
            SourceRecord(
                id="a\tb",
                data={
                    "text": "tab\tnew\nline\\back\rcr\x00nul",
                    "a b": 2**70,
                    'q"uote': float("nan"),
                    long_name: {"k": "v\\w", 1: None},
                    "naive": "2026-01-01T10:00:00",
                },
            ),
            SourceRecord(id="2", data={"text": None, "a b": 1, 'q"uote': 1.5, "naive": None}),
        ]
    )
    destination.commit()
    destination.finalize(True)
    columns = pg.columns("users")
    long_column = next(name for name in columns if name.startswith("field_x"))
    assert len(long_column) <= 63
    assert [columns[c] for c in ("text", "a b", 'q"uote', long_column, "naive")] == [
        "text",
        "text",
        "double precision",
        "jsonb",
        "timestamp with time zone",
    ]
    rows = pg.query(
        f'SELECT _bizon_id, text, "a b", "q""uote"::text, "{long_column}", naive'
        " FROM users ORDER BY _bizon_id DESC"
    )
    assert rows == [
        (
            "a\tb",
            "tab\tnew\nline\\back\rcrnul",
            str(2**70),
            "NaN",
            {"k": "v\\w", "1": None},
            datetime(2026, 1, 1, 10, tzinfo=UTC),
        ),
        ("2", None, "1", "1.5", None, None),
    ]


def test_append_adds_every_row(api, pipeline, pg, store):
    appending = pipeline({"write_disposition": "append"}, sync_mode="incremental")
    run(appending, store)
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    api.upsert("users", {"id": 26, "name": "new"})

    run(appending, store)
    assert ids(pg) == ["1", "2", "3", "3", *IDS[3:], "26"]
    names = pg.query("SELECT name FROM users WHERE id = 3 ORDER BY _bizon_loaded_at")
    assert names == [("Edsger 3",), ("changed",)]


def test_schema_evolves_within_and_across_runs_without_losing_values(api, pipeline, pg, store):
    # Page 1: `level` is an integer; page 2: a float, and a new field; page 3: a string.
    for record in api.records("users"):
        i = record["id"]
        level = i if i <= 10 else (i + 0.5 if i <= 20 else "high")
        api.add("users", [{**record, "level": level}])
    api.upsert("users", {"id": 15, "nickname": "fifteen"})
    incremental = pipeline({"batch_size": 10}, sync_mode="incremental")

    run(incremental, store)
    columns = pg.columns("users")
    assert (columns["level"], columns["nickname"]) == ("text", "text")
    levels = dict(pg.query("SELECT id, level FROM users"))
    assert [levels[i] for i in (1, 10, 11, 20, 21, 25)] == [
        "1",
        "10",
        "11.5",
        "20.5",
        "high",
        "high",
    ]
    assert pg.query("SELECT id FROM users WHERE nickname IS NOT NULL") == [(15,)]

    # A later run: a new nested field, a double that becomes text, a bigint that becomes double.
    api.upsert("users", {"id": 2, "plan": {"tier": "pro"}, "score": "n/a"})
    api.upsert("users", {"id": 4, "age": 40.5})
    run(incremental, store)
    columns = pg.columns("users")
    assert (columns["plan"], columns["score"], columns["age"]) == (
        "jsonb",
        "text",
        "double precision",
    )
    rows = {row[0]: row[1:] for row in pg.query("SELECT id, plan, score, age FROM users")}
    assert rows[2][:2] == ({"tier": "pro"}, "n/a")
    assert rows[1] == (None, "3.7", 25.0)
    assert rows[4][2] == 40.5
    assert len(rows) == 25
    assert pg.query("SELECT count(*) FROM users WHERE level IS NULL OR email IS NULL") == [(0,)]


@pytest.mark.parametrize("sync_mode", ["full_refresh", "incremental"])
def test_a_crash_between_a_staging_write_and_its_checkpoint_resumes_without_loss(
    server, pipeline, pg, store, sync_mode
):
    loading = pipeline({"batch_size": 10}, sync_mode=sync_mode)
    store.fail_on = "checkpoint"
    with pytest.raises(RuntimeError, match="crash between a staging write"):
        run(loading, store)
    assert "users" not in pg.tables()
    staged = pg.query("SELECT DISTINCT _bizon_batch FROM _bizon_stage_users ORDER BY 1")
    assert staged == [(1,), (2,)]  # batch 2 is staged, its checkpoint is not
    checkpoint = store.resume_point(KEY)
    assert checkpoint is not None and checkpoint.records == 10

    fetched = _page_requests(server)
    resumed = run(loading, store)
    assert resumed.resumed_from == checkpoint
    assert resumed.records == 25
    assert ids(pg) == IDS
    assert _page_requests(server) - fetched == 2  # pages 2 and 3 only


@pytest.mark.parametrize("disposition", ["merge", "append"])
def test_a_crash_between_the_tables_commit_and_the_cursors_duplicates_nothing(
    api, pipeline, pg, store, disposition
):
    # Small pages and batches: an incremental run of 3 records has a checkpoint.
    loading = pipeline(
        {"batch_size": 2, "write_disposition": disposition}, sync_mode="incremental", page_size=2
    )
    run(loading, store)
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    api.upsert("users", {"id": 26, "name": "new"})
    api.upsert("users", {"id": 27, "name": "new"})
    store.fail_on = "commit"
    with pytest.raises(StateError, match="crash between"):
        run(loading, store)
    expected = 27 if disposition == "merge" else 28
    assert pg.query("SELECT count(*) FROM users") == [(expected,)]  # committed, cursor not

    resumed = run(loading, store)
    assert resumed.resumed_from is not None
    assert pg.query("SELECT count(*) FROM users") == [(expected,)]
    assert pg.query("SELECT count(*) FROM _bizon_loads") == [(2,)]
    assert store.last_success(KEY) == resumed.run
    if disposition == "merge":
        assert pg.query("SELECT _bizon_id FROM users GROUP BY 1 HAVING count(*) > 1") == []


def test_an_unreachable_server_is_one_line_naming_the_table(pipeline, pg, store):
    port = _closed_port()
    with pytest.raises(DestinationError) as failure:
        run(pipeline({"port": port}), store)
    message = str(failure.value)
    assert message.startswith(f"destination 'postgres' table {pg.name}.users: cannot connect to")
    assert "Connection refused" in message
    assert "\n" not in message
    assert store.last_success(KEY) is None


def test_a_wrong_password_is_reported_without_the_password(
    pipeline, pg, store, monkeypatch, cli, write_pipeline, server
):
    wrong = "Wr0ng-Pa55word-xyz"
    monkeypatch.setenv(pg.password_env, wrong)
    with pytest.raises(DestinationError) as failure:
        run(pipeline(), store)
    message = str(failure.value)
    assert message.startswith(f"destination 'postgres' table {pg.name}.users: cannot connect")
    assert "password authentication failed" in message
    assert wrong not in message and "\n" not in message

    path = write_pipeline({"base_url": server.url}, {"name": "postgres", "config": pg.config()})
    code, out, err = cli("check", path)
    assert code != 0
    assert "destination 'postgres': connection FAILED: cannot connect" in out
    assert wrong not in out + err
    code, out, err = cli("run", path)
    assert code != 0 and "password authentication failed" in out + err
    assert wrong not in out + err


def test_check_connection_passes_with_the_right_password(cli, write_pipeline, server, pg):
    path = write_pipeline({"base_url": server.url}, {"name": "postgres", "config": pg.config()})
    code, out, _ = cli("check", path)
    assert code == 0, out
    assert "destination 'postgres': connection OK" in out
    assert pg.server.password not in out


def test_a_missing_schema_is_reported_not_created(pipeline, pg, store):
    with pytest.raises(
        DestinationError,
        match=r"table missing_schema\.users: schema missing_schema does not exist in database",
    ):
        run(pipeline({"schema": "missing_schema"}), store)
    assert pg.query("SELECT 1 FROM pg_namespace WHERE nspname = 'missing_schema'") == []


@pytest.mark.parametrize(
    ("setting", "value", "field"),
    [
        ("table", "users; DROP TABLE users", "destination.config.table"),
        ("table", "1users", "destination.config.table"),
        ("schema", 'public"', "destination.config.schema"),
    ],
)
def test_an_invalid_identifier_is_refused_when_the_config_loads(pipeline, setting, value, field):
    with pytest.raises(ConfigError, match=rf"{re.escape(field)}: .* is not a valid identifier"):
        pipeline({setting: value})


def test_a_second_load_into_a_table_being_loaded_fails_and_changes_nothing(
    api, pipeline, pg, store
):
    run(pipeline(), store)
    before, committed = table(pg), store.last_success(KEY)
    api.upsert("users", {"id": 1, "name": "changed"})
    with psycopg.connect(autocommit=True, **pg.server.params()) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{pg.name}.users",))
        with pytest.raises(
            DestinationError,
            match=re.escape(
                f"table {pg.name}.users: another load into table {pg.name}.users is running"
            ),
        ):
            run(pipeline(), store)
        assert table(pg) == before
        assert store.last_success(KEY) == committed
        assert store.resume_point(KEY) is None

    run(pipeline(), store)
    assert pg.query("SELECT name FROM users WHERE id = 1") == [("changed",)]
    with psycopg.connect(
        autocommit=True, **pg.server.params()
    ) as other:  # every load released the table's lock
        granted = other.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"{pg.name}.users",))
        assert granted.fetchone() == (True,)


# Helpers ------------------------------------------------------------------------------


def _destination(pg: Any, mode: SourceSyncModes, **config: Any) -> AbstractDestination:
    cls = load_connector_class(get_connector(ConnectorKind.DESTINATION, "postgres"))
    settings = {**pg.config(**config), "password": pg.server.password}
    context = WriteContext("pipe", "src", "users", mode, "run-1", datetime.now(UTC))
    return cls(cls.get_config_class().model_validate(settings), context)


def _record(i: int, value: str) -> SourceRecord:
    return SourceRecord(id=str(i), data={"id": i, "v": value})


def _page_requests(server: Any) -> int:
    return len([r for r in server.requests if r.path.startswith("/cursor/users")])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
