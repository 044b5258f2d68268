"""A schema of its own per destination test, on the session's PostgreSQL server
(the `postgres` fixture of tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bizon_core.testing.postgres import PostgresServer

PASSWORD_ENV = "BIZON_TEST_PG_PASSWORD"


@dataclass(frozen=True)
class PostgresSchema:
    """A schema of the test server that belongs to one test."""

    server: PostgresServer
    name: str
    #: The variable the password is read from (`env://`), set by the `pg` fixture.
    password_env: str = PASSWORD_ENV

    def config(self, **overrides: Any) -> dict[str, Any]:
        """`destination.config` of the postgres destination; the password as env://."""
        return {
            "host": self.server.host,
            "port": self.server.port,
            "database": self.server.database,
            "user": self.server.user,
            "password": f"env://{self.password_env}",
            "schema": self.name,
            **overrides,
        }

    def query(self, statement: str | sql.Composable, params: Any = None) -> list[tuple]:
        """Rows of a query run in this schema (its `search_path`)."""
        connection = self.server.params(options=f"-c search_path={self.name}")
        with psycopg.connect(autocommit=True, **connection) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> `information_schema.columns.data_type`, in table order."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.name, table),
        )
        return dict(rows)

    def tables(self) -> set[str]:
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.name,))
        return {name for (name,) in rows}


@pytest.fixture
def pg(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresSchema]:
    """A fresh schema owned by the test role, dropped afterwards; the password in the env."""
    monkeypatch.setenv(PASSWORD_ENV, postgres.password)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(autocommit=True, **postgres.admin) as admin:
        admin.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(name), sql.Identifier(postgres.user)
            )
        )
    try:
        yield PostgresSchema(postgres, name)
    finally:
        with psycopg.connect(autocommit=True, **postgres.admin) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
