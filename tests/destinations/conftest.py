"""A throw-away PostgreSQL server for destination tests, and a schema of its own per test.

The server is started once per session from the PostgreSQL binaries found in PATH or in
/usr/lib/postgresql/*/bin (as the `postgres` user when running as root, since initdb
refuses root), on a free port of 127.0.0.1, with passwords required for TCP connections.
Set BIZON_TEST_PG_DSN to use a running server instead: its user must be allowed to
create schemas, and the server must require passwords for the wrong-password test.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DSN_ENV = "BIZON_TEST_PG_DSN"
PASSWORD_ENV = "BIZON_TEST_PG_PASSWORD"
_ROLE = "bizon_test"
_DATABASE = "bizon_test"


@dataclass(frozen=True)
class PostgresServer:
    """How to reach the test server: as the test role, and as a role that creates schemas."""

    host: str
    port: int
    user: str
    password: str
    database: str
    admin: dict[str, Any] = field(repr=False)

    def connect(self, **overrides: Any) -> psycopg.Connection:
        params = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            **overrides,
        }
        return psycopg.connect(autocommit=True, **params)


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
        with self.server.connect(options=f"-c search_path={self.name}") as conn:
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: BIZON_TEST_PG_DSN's, else a throw-away one."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        params = conninfo_to_dict(dsn)
        yield PostgresServer(
            host=str(params.get("host") or "localhost"),
            port=int(params.get("port") or 5432),
            user=str(params["user"]),
            password=str(params.get("password") or ""),
            database=str(params["dbname"]),
            admin=dict(params),
        )
        return
    yield from _throwaway_server()


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


def _throwaway_server() -> Iterator[PostgresServer]:
    bindir = _find_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: the postgres "
            "destination is tested against a real server. Install the Debian package "
            "`postgresql` (scripts/ensure_postgres.sh does it), or set "
            f"{DSN_ENV} to a server's connection string."
        )
    owner = _server_owner()
    # Not under pytest's tmp dir: it is private to root, and the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="bizon-pg-"))
    data, sockets, pwfile, log = base / "data", base / "sockets", base / "pwfile", base / "log"
    sockets.mkdir()
    admin_password = secrets.token_hex(16)
    pwfile.write_text(admin_password + "\n")
    pwfile.chmod(0o600)
    if owner is not None:
        for path in (base, sockets, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    try:
        initdb = ["-D", data, "-U", "postgres", f"--pwfile={pwfile}", "--encoding=UTF8"]
        initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--locale=C", "--no-sync"]
        _run(owner, bindir / "initdb", *initdb)
        port = _free_port()
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = ["-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start"]
        _run(owner, bindir / "pg_ctl", *start, log=log)
        admin = {"host": str(sockets), "port": port, "user": "postgres", "dbname": "postgres"}
        password = secrets.token_hex(12)
        with psycopg.connect(autocommit=True, **admin) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(_ROLE), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(_DATABASE), sql.Identifier(_ROLE)
                )
            )
        yield PostgresServer(
            host="127.0.0.1",
            port=port,
            user=_ROLE,
            password=password,
            database=_DATABASE,
            admin={**admin, "dbname": _DATABASE},
        )
    finally:
        if (data / "postmaster.pid").exists():
            _run(owner, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _find_bindir() -> Path | None:
    """The directory of initdb and pg_ctl: PATH first, then the newest Debian install."""
    found = shutil.which("initdb")
    if found:
        directory = Path(found).resolve().parent  # Debian links them from /usr/lib/postgresql
        if (directory / "pg_ctl").is_file():
            return directory
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: _version(d.parent.name),
        reverse=True,
    )
    for directory in candidates:
        if (directory / "pg_ctl").is_file():
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _server_owner() -> pwd.struct_passwd | None:
    """The OS user to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, the test server needs a `postgres` OS user (initdb refuses "
            "root); the Debian package `postgresql` creates it"
        )


def _run(
    owner: pwd.struct_passwd | None, *command: Any, check: bool = True, log: Path | None = None
) -> None:
    args = [str(part) for part in command]
    if owner is not None:
        args = ["runuser", "-u", owner.pw_name, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        server_log = log.read_text(errors="replace") if log is not None and log.exists() else ""
        pytest.fail(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{server_log}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
