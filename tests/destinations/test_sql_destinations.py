"""What both SQL destinations must do alike, run against each database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb
import pytest

from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.destination.sql import ColumnType, infer_columns
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import DestinationError
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord


@dataclass
class Database:
    """One destination's database: how to configure it and run SQL in it."""

    name: str
    config: dict[str, Any]
    schema: str
    #: Rows of a statement run in the database (DuckDB: `main`; PostgreSQL: the schema).
    query: Callable[[str], list[tuple]]
    tables: Callable[[], set[str]]
    columns: Callable[[str], dict[str, str]]
    #: How the catalog names the column of each type.
    types: dict[ColumnType, str]

    def destination(self, run_id: str, **config: Any) -> AbstractDestination:
        cls = load_connector_class(get_connector(ConnectorKind.DESTINATION, self.name))
        settings = cls.get_config_class().model_validate({**self.config, **config})
        mode = SourceSyncModes.FULL_REFRESH
        return cls(settings, WriteContext("pipe", "src", "users", mode, run_id, datetime.now(UTC)))


@pytest.fixture(params=["duckdb", "postgres"])
def database(request, tmp_path) -> Database:
    if request.param == "duckdb":
        path = str(tmp_path / "bizon.duckdb")

        def query(statement: str) -> list[tuple]:
            with duckdb.connect(path) as con:
                result = con.execute(statement)
                return result.fetchall() if result.description else []

        def tables() -> set[str]:
            with duckdb.connect(path) as con:
                rows = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            return {name for (name,) in rows}

        def columns(table: str) -> dict[str, str]:
            with duckdb.connect(path) as con:
                rows = con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
            return dict(rows)

        types = {
            ColumnType.BOOLEAN: "BOOLEAN",
            ColumnType.BIGINT: "BIGINT",
            ColumnType.DOUBLE: "DOUBLE",
            ColumnType.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
            ColumnType.TEXT: "VARCHAR",
            ColumnType.JSON: "JSON",
        }
        return Database("duckdb", {"path": path}, "main", query, tables, columns, types)
    pg = request.getfixturevalue("pg")
    config = {**pg.config(), "password": pg.server.password}
    types = {
        ColumnType.BOOLEAN: "boolean",
        ColumnType.BIGINT: "bigint",
        ColumnType.DOUBLE: "double precision",
        ColumnType.TIMESTAMP: "timestamp with time zone",
        ColumnType.TEXT: "text",
        ColumnType.JSON: "jsonb",
    }
    return Database("postgres", config, pg.name, pg.query, pg.tables, pg.columns, types)


def test_a_resume_needs_this_runs_batches_in_staging(database):
    first = database.destination("run1", batch_size=1)
    first.begin(None)
    first.write([SourceRecord(id="1", data={"n": 1})])
    marker = first.flush()
    first.finalize(False)
    assert marker == {"run_id": "run1", "batch": 1}

    def resume(with_marker: dict[str, Any]) -> None:
        again = database.destination("run1")
        try:
            again.begin(with_marker)
        finally:
            again.finalize(False)

    stage = rf"{database.schema}\._bizon_stage_users"
    with pytest.raises(DestinationError, match=r"cannot resume run run1: its checkpoint was not"):
        resume({"run_id": "another", "batch": 1})
    with pytest.raises(DestinationError, match=rf"{stage}: it does not hold this run's batches up"):
        resume({**marker, "batch": 2})
    database.query(f"DROP TABLE {database.schema}._bizon_stage_users")
    with pytest.raises(DestinationError, match=rf"{stage}: it is missing; run again without"):
        resume(marker)
    assert database.tables() == {"_bizon_loads"}  # no table was made of it


def test_both_databases_type_columns_as_the_shared_model(database):
    """Each database types a column as `infer_columns` does, whatever path it takes."""
    rows = [
        {"flag": True, "n": 1, "ratio": 1, "at": "2026-01-01T00:00:00Z", "big": 2**63 - 1},
        {"flag": False, "n": 2, "ratio": 2.5, "at": "2026-01-01 10:00", "big": 2**63},
        {"mixed": 1, "nested": {"a": [1]}, "when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"mixed": "one", "nested": [2], "amount": Decimal("1.5"), "uid": UUID(int=1)},
        {"not_at": "2026-02-30T00:00:00", "empty": None, "either": True},
        {"not_at": "2026-01-01T00:00:00", "either": 1, "ratio": float("nan")},
    ]
    destination = database.destination("run1")
    destination.begin(None)
    destination.write([SourceRecord(id=str(n), data=row) for n, row in enumerate(rows)])
    destination.commit()
    destination.finalize(True)
    expected = {
        field: database.types[kind or ColumnType.TEXT]
        for field, kind in infer_columns(rows).items()
    }
    loaded = database.columns("users")
    assert {field: loaded[field] for field in expected} == expected


def test_a_field_named_like_a_bookkeeping_column_gets_a_column_of_its_own(database):
    """Nothing is refused for its shape: `_bizon_id` as a field loads as `_bizon_id_1`."""
    destination = database.destination("run1", batch_size=1)
    destination.begin(None)
    destination.write([SourceRecord(id="1", data={"_bizon_id": "mine", "_bizon_row": 7})])
    destination.write([SourceRecord(id="2", data={"_bizon_id": "theirs", "_bizon_id_1": 2})])
    destination.commit()
    destination.finalize(True)
    columns = database.columns("users")
    assert list(columns)[4:] == ["_bizon_id_1", "_bizon_row_1", "_bizon_id_1_1"]
    rows = database.query(
        "SELECT _bizon_id, _bizon_id_1, _bizon_row_1, _bizon_id_1_1 FROM users ORDER BY 1"
    )
    assert rows == [("1", "mine", 7, None), ("2", "theirs", None, 2)]


@pytest.mark.parametrize("disposition", ["replace", "merge", "append"])
def test_the_loads_table_counts_the_rows_each_commit_loaded(database, disposition):
    """Record 1 is written twice: replace and merge keep its last version, append both."""
    for run_id in ("run1", "run2"):
        destination = database.destination(run_id, batch_size=2, write_disposition=disposition)
        destination.begin(None)
        destination.write([SourceRecord(id="1", data={"v": "a"}), SourceRecord(id="2", data={})])
        destination.write([SourceRecord(id="1", data={"v": "b"}), SourceRecord(id="3", data={})])
        destination.commit()
        destination.finalize(True)
    loaded = 4 if disposition == "append" else 3
    assert database.query('SELECT run_id, "rows" FROM _bizon_loads ORDER BY 1') == [
        ("run1", loaded),
        ("run2", loaded),
    ]
    rows = database.query("SELECT _bizon_id, v FROM users ORDER BY 1, 2")
    if disposition == "append":
        assert rows == [
            ("1", "a"),
            ("1", "a"),
            ("1", "b"),
            ("1", "b"),
            ("2", None),
            ("2", None),
            ("3", None),
            ("3", None),
        ]
    else:
        assert rows == [("1", "b"), ("2", None), ("3", None)]


def test_a_table_of_the_longest_name_stages_and_commits(database):
    """PostgreSQL cuts names beyond 63 bytes: there, staging's is shortened with a hash."""
    table = "t" * 63
    destination = database.destination("run1", batch_size=1, table=table)
    destination.begin(None)
    destination.write([SourceRecord(id="1", data={"n": 1})])
    destination.flush()
    [stage] = database.tables() - {"_bizon_loads"}
    assert stage.startswith("_bizon_stage_ttt")
    assert len(stage) <= 63 if database.name == "postgres" else stage == f"_bizon_stage_{table}"
    destination.commit()
    destination.finalize(True)
    assert database.tables() == {"_bizon_loads", table}
    assert database.query(f"SELECT _bizon_id, n FROM {table}") == [("1", 1)]
