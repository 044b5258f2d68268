"""Shared fixtures: an isolated working directory, the test connectors, a local API server,
one PostgreSQL server for the session.

The server is a throw-away one (`bizon_core.testing.postgres`), started on first use.
Set BIZON_TEST_PG_DSN to use a running server instead: its user must be allowed to
create schemas, and the server must require passwords for the wrong-password test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bizon_core.cli import main
from bizon_core.testing import FakeApi, FakeApiServer, make_records
from bizon_core.testing.postgres import PostgresServer, PostgresUnavailable, temporary_postgres

FIXTURE_CONNECTORS = Path(__file__).parent / "fixtures" / "connectors"
DSN_ENV = "BIZON_TEST_PG_DSN"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own directory, with the test connectors on the search path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(FIXTURE_CONNECTORS))
    monkeypatch.delenv("BIZON_STATE_PATH", raising=False)
    return tmp_path


@pytest.fixture
def api() -> FakeApi:
    """25 users and 25 orders."""
    fake = FakeApi()
    for collection in ("users", "orders"):
        for record in make_records(25):
            fake.upsert(collection, record)
    return fake


@pytest.fixture
def server(api: FakeApi) -> Iterator[FakeApiServer]:
    with FakeApiServer(api) as running:
        yield running


@pytest.fixture
def myapi(server: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> FakeApiServer:
    """The seed connector reads its BASE_URL when imported: import it afresh for this server."""
    monkeypatch.setenv("MYAPI_BASE_URL", server.url)
    for name in [m for m in sys.modules if m.startswith("bizon_connectors.sources.myapi")]:
        monkeypatch.delitem(sys.modules, name)
    return server


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline YAML; `source` and `destination` mappings are merged into defaults."""

    def write(
        source: dict[str, Any] | None = None,
        destination: dict[str, Any] | None = None,
        name: str = "test_pipeline",
        filename: str = "pipeline.yml",
    ) -> Path:
        config = {
            "name": name,
            "source": {"name": "paged", "stream": "users", **(source or {})},
            "destination": destination
            or {"name": "file", "config": {"path": str(tmp_path / "out" / "{stream}.jsonl")}},
        }
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `bizon ARGS` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: BIZON_TEST_PG_DSN's, else a throw-away one."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        from psycopg.conninfo import conninfo_to_dict

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
    try:
        with temporary_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc} (or set {DSN_ENV} to a server's connection string)")
