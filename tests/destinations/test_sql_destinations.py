"""What both SQL destinations must do alike, run against each database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from bizon_core.destination.destination import AbstractDestination, WriteContext
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
    execute: Callable[[str], None]
    tables: Callable[[], set[str]]

    def destination(self, run_id: str, **config: Any) -> AbstractDestination:
        cls = load_connector_class(get_connector(ConnectorKind.DESTINATION, self.name))
        settings = cls.get_config_class().model_validate({**self.config, **config})
        mode = SourceSyncModes.FULL_REFRESH
        return cls(settings, WriteContext("pipe", "src", "users", mode, run_id, datetime.now(UTC)))


@pytest.fixture(params=["duckdb", "postgres"])
def database(request, tmp_path) -> Database:
    if request.param == "duckdb":
        path = str(tmp_path / "bizon.duckdb")

        def execute(statement: str) -> None:
            with duckdb.connect(path) as con:
                con.execute(statement)

        def tables() -> set[str]:
            with duckdb.connect(path) as con:
                rows = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            return {name for (name,) in rows}

        return Database("duckdb", {"path": path}, "main", execute, tables)
    pg = request.getfixturevalue("pg")
    config = {**pg.config(), "password": pg.server.password}
    return Database("postgres", config, pg.name, pg.query, pg.tables)


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
    database.execute(f"DROP TABLE {database.schema}._bizon_stage_users")
    with pytest.raises(DestinationError, match=rf"{stage}: it is missing; run again without"):
        resume(marker)
    assert database.tables() == {"_bizon_loads"}  # no table was made of it
