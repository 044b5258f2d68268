"""The destinations a trial loads into: their pipeline config, and the rows they hold.

A row is `(id, generation)`: which version of which record (see `pages`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bizon_core.testing.postgres import PostgresServer

DESTINATIONS = ("file", "duckdb", "postgres")
TABLE = "records"
PASSWORD_ENV = "BIZON_CHAOS_PGPASSWORD"

Rows = Counter[tuple[int, int]]


@dataclass(frozen=True)
class Target:
    """One destination of one trial, in `workdir` (PostgreSQL: in `schema` of `server`)."""

    name: str
    workdir: Path
    server: PostgresServer | None = None
    schema: str = "public"

    def config(self) -> dict[str, Any]:
        """`destination:` of the pipeline YAML (defaults everywhere but where to write)."""
        if self.name == "file":
            return {"name": "file", "config": {"path": str(self.workdir / f"{TABLE}.jsonl")}}
        if self.name == "duckdb":
            return {"name": "duckdb", "config": {"path": str(self.workdir / "chaos.duckdb")}}
        if self.name == "postgres":
            server = self._server()
            config = {
                "host": server.host,
                "port": server.port,
                "database": server.database,
                "user": server.user,
                "password": f"env://{PASSWORD_ENV}",
                "schema": self.schema,
            }
            return {"name": "postgres", "config": config}
        raise ValueError(f"unknown destination {self.name!r}, expected one of {DESTINATIONS}")

    def env(self) -> dict[str, str]:
        """Environment the sync needs for this destination."""
        return {PASSWORD_ENV: self._server().password} if self.name == "postgres" else {}

    def prepare(self) -> None:
        """Create what the destination expects to exist (PostgreSQL: the trial's schema)."""
        if self.name == "postgres":
            self._admin(
                "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}", self.schema, self._server().user
            )

    def drop(self) -> None:
        """Remove what `prepare` created."""
        if self.name == "postgres":
            self._admin("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)

    def rows(self) -> Rows:
        """What the destination holds now: a count of each `(id, generation)`."""
        if self.name == "file":
            path = self.workdir / f"{TABLE}.jsonl"
            if not path.exists():
                return Counter()
            with path.open("rb") as lines:
                return Counter(_file_row(orjson.loads(line)) for line in lines if line.strip())
        if self.name == "duckdb":
            return self._duckdb_rows()
        return self._postgres_rows()

    def _duckdb_rows(self) -> Rows:
        import duckdb

        path = self.workdir / "chaos.duckdb"
        if not path.exists():
            return Counter()
        with duckdb.connect(str(path), read_only=True) as db:
            found = db.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = 'main' AND table_name = ?",
                [TABLE],
            ).fetchone()
            if not found or not found[0]:
                return Counter()
            rows = db.execute(f'SELECT "_bizon_id", "generation" FROM "main"."{TABLE}"')
            return Counter((int(i), int(g)) for i, g in rows.fetchall())

    def _postgres_rows(self) -> Rows:
        import psycopg
        from psycopg import sql

        with psycopg.connect(autocommit=True, **self._server().params()) as db:
            exists = db.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{TABLE}"',))
            if exists.fetchone()[0] is None:  # type: ignore[index]
                return Counter()
            query = sql.SQL('SELECT "_bizon_id", "generation" FROM {}.{}').format(
                sql.Identifier(self.schema), sql.Identifier(TABLE)
            )
            return Counter((int(i), int(g)) for i, g in db.execute(query).fetchall())

    def _admin(self, statement: str, *identifiers: str) -> None:
        import psycopg
        from psycopg import sql

        query = sql.SQL(statement).format(*(sql.Identifier(i) for i in identifiers))
        with psycopg.connect(autocommit=True, **self._server().admin) as db:
            db.execute(query)

    def _server(self) -> PostgresServer:
        if self.server is None:
            raise ValueError("the postgres destination needs a PostgreSQL server")
        return self.server


def _file_row(line: dict[str, Any]) -> tuple[int, int]:
    return int(line["id"]), int(line["data"]["generation"])
