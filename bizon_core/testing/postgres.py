"""A throw-away PostgreSQL server, for tests and benchmarks.

    with temporary_postgres() as server:
        psycopg.connect(**server.params())

Started from the PostgreSQL binaries found in PATH or in /usr/lib/postgresql/*/bin (as
the `postgres` OS user when running as root, since initdb refuses root), on a free port
of 127.0.0.1, with passwords required for TCP connections; stopped and deleted on exit.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLE = "bizon_test"
DATABASE = "bizon_test"
#: Settings that trade durability for speed: fine for tests, not for benchmarks.
FAST_SETTINGS = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PostgresUnavailable(RuntimeError):
    """The server could not be started; the message says what to install or fix."""


@dataclass(frozen=True)
class PostgresServer:
    """How to reach the server: as a password role owning `database`, and as its admin."""

    host: str
    port: int
    user: str
    password: str
    database: str
    admin: dict[str, Any] = field(repr=False)

    def params(self, **overrides: Any) -> dict[str, Any]:
        """Connection parameters of the role, for `psycopg.connect(**params)`."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            **overrides,
        }


@contextmanager
def temporary_postgres(durable: bool = False) -> Iterator[PostgresServer]:
    """Start a new cluster; `durable=False` turns fsync off, for speed."""
    import psycopg
    from psycopg import sql

    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed; install the "
            "Debian package `postgresql` (scripts/ensure_postgres.sh does it)"
        )
    owner = _server_owner()
    # Not under a private temporary directory of root's: the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="bizon-pg-"))
    data, sockets, pwfile, log = base / "data", base / "sockets", base / "pwfile", base / "log"
    sockets.mkdir()
    pwfile.write_text(secrets.token_hex(16) + "\n")
    pwfile.chmod(0o600)
    if owner is not None:
        for path in (base, sockets, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    try:
        initdb = ["-D", data, "-U", "postgres", f"--pwfile={pwfile}", "--encoding=UTF8"]
        initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--locale=C", "--no-sync"]
        _run(owner, bindir / "initdb", *initdb)
        port = _free_port()
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
        if not durable:
            options += FAST_SETTINGS
        _run(
            owner,
            bindir / "pg_ctl",
            "-D",
            data,
            "-l",
            log,
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
            log=log,
        )
        admin = {"host": str(sockets), "port": port, "user": "postgres", "dbname": "postgres"}
        password = secrets.token_hex(12)
        with psycopg.connect(autocommit=True, **admin) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(ROLE)
                )
            )
        yield PostgresServer(
            host="127.0.0.1",
            port=port,
            user=ROLE,
            password=password,
            database=DATABASE,
            admin={**admin, "dbname": DATABASE},
        )
    finally:
        if (data / "postmaster.pid").exists():
            _run(owner, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def find_bindir() -> Path | None:
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
    return next((d for d in candidates if (d / "pg_ctl").is_file()), None)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _server_owner() -> pwd.struct_passwd | None:
    """The OS user to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, the server needs a `postgres` OS user (initdb refuses root); "
            "the Debian package `postgresql` creates it"
        ) from None


def _run(
    owner: pwd.struct_passwd | None, *command: Any, check: bool = True, log: Path | None = None
) -> None:
    args = [str(part) for part in command]
    if owner is not None:
        args = ["runuser", "-u", owner.pw_name, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        server_log = log.read_text(errors="replace") if log is not None and log.exists() else ""
        raise PostgresUnavailable(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{server_log}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
