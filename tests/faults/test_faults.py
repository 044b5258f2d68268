"""Real syncs through the CLI against an unreliable API, at the shipped `http:` defaults.

Transient faults (5xx, 429 + Retry-After, resets, truncated bodies, slow answers) are
retried and the destination ends exact: rows = distinct ids = the source's records.
Permanent faults (401, 500 for good) end the run with one clear line and exit 1, and
leave the cursor and the data of the previous successful run as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing import (
    FakeApi,
    FakeApiServer,
    Fault,
    RandomFaults,
    make_records,
    transient_faults,
)

N_RECORDS = 400
PAGE_SIZE = 10  # the paged test source's own page size: 40 pages, one request each
KEY = StreamKey("test_pipeline", "paged", "users")
TOKEN = "fault-token-4242"
TRANSIENT_KINDS = {"500", "502", "503", "429", "reset", "truncate"}


@pytest.fixture
def api() -> FakeApi:
    return FakeApi({"users": make_records(N_RECORDS)})


@pytest.fixture
def server(api: FakeApi) -> Iterator[FakeApiServer]:
    with FakeApiServer(api, required_headers={"Authorization": f"Bearer {TOKEN}"}) as running:
        yield running


@pytest.fixture(params=["file", "duckdb"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "file":
        return {"name": "file", "config": {"path": str(tmp_path / "out" / "users.jsonl")}}
    return {"name": "duckdb", "config": {"path": str(tmp_path / "out.duckdb")}}


def loaded(destination: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(id, record as JSON) of every row the destination holds, in id order."""
    path = Path(destination["config"]["path"])
    if destination["name"] == "file":
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        pairs = [
            (row["id"], orjson.dumps(row["data"], option=orjson.OPT_SORT_KEYS)) for row in rows
        ]
    else:
        with duckdb.connect(str(path), read_only=True) as db:
            found = db.execute('SELECT _bizon_id, "name", "email" FROM main."users"').fetchall()
        pairs = [(str(i), orjson.dumps([name, email])) for i, name, email in found]
    return sorted(pairs, key=lambda pair: int(pair[0]))


def expected(api: FakeApi, destination: dict[str, Any]) -> list[tuple[str, bytes]]:
    records = api.collections["users"]
    if destination["name"] == "file":
        return [(str(r["id"]), orjson.dumps(r, option=orjson.OPT_SORT_KEYS)) for r in records]
    return [(str(r["id"]), orjson.dumps([r["name"], r["email"]])) for r in records]


def kinds(server: FakeApiServer) -> set[str]:
    return {str(f.status) if f.kind == "status" else f.kind for _, f in server.fired}


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def pipeline(
    write_pipeline: Callable[..., Path], server: FakeApiServer, destination: dict[str, Any]
) -> Callable[..., Path]:
    """A pipeline of the paged source on `server`, with no `http:` section: the defaults."""

    def write(**source: Any) -> Path:
        auth = {"type": "bearer", "params": {"token": TOKEN}}
        return write_pipeline(
            {"base_url": server.url, "page_size": PAGE_SIZE, "authentication": auth, **source},
            destination,
        )

    return write


def test_a_sync_through_random_faults_is_exact_at_the_defaults(
    cli, api, server, pipeline, destination
) -> None:
    server.inject_random(RandomFaults(transient_faults(), rate=0.2, seed=21))
    code, out, err = cli("run", pipeline())
    assert code == 0, err
    assert f"users: {N_RECORDS} records in {N_RECORDS // PAGE_SIZE} pages" in out
    assert loaded(destination) == expected(api, destination)  # rows = distinct ids = source
    assert kinds(server) == TRANSIENT_KINDS  # each kind happened, and was survived
    assert len(server.fired) >= 8
    assert "WARNING" in err and TOKEN not in out + err


@pytest.mark.parametrize("destination", ["file"], indirect=True)
def test_a_slow_answer_at_the_default_timeout_is_retried(
    cli, api, server, pipeline, destination
) -> None:
    """One answer slower than the default timeout of 30 s costs those 30 s: that is what
    users run, so it is proven here once; many timeouts are in the test below."""
    server.inject(Fault("delay", seconds=31, path="/cursor/users", nth=7))
    code, out, err = cli("run", pipeline())
    assert code == 0, err
    assert f"users: {N_RECORDS} records" in out
    assert loaded(destination) == expected(api, destination)
    assert [f.kind for _, f in server.fired] == ["delay"]
    assert "/cursor/users: ReadTimeoutError (TimeoutError); retry 1 of 5" in err


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_many_slow_answers_with_a_short_timeout(cli, api, server, pipeline, destination) -> None:
    """Speed only: the timeout is shortened so that many slow answers fit in a test."""
    faults = transient_faults(slow_seconds=1.0)
    server.inject_random(RandomFaults(faults, rate=0.2, seed=5))
    code, _, err = cli("run", pipeline(http={"timeout": 0.5}))
    assert code == 0, err
    assert loaded(destination) == expected(api, destination)
    assert sum(f.kind == "delay" for _, f in server.fired) >= 3


def first_run(cli, path: Path, destination: dict[str, Any]) -> tuple[Any, Any]:
    code, _, err = cli("run", path)
    assert code == 0, err
    return loaded(destination), SqliteStateStore().last_success(KEY)


def assert_unchanged(destination: dict[str, Any], before: tuple[Any, Any]) -> None:
    assert (loaded(destination), SqliteStateStore().last_success(KEY)) == before


def test_401_for_good_fails_with_one_line_and_changes_nothing(
    cli, server, pipeline, destination
) -> None:
    path = pipeline()
    before = first_run(cli, path, destination)
    server.required_headers = {"Authorization": "Bearer rotated-token-0000"}
    code, out, err = cli("run", path)
    assert code == 1
    line = error_line(err)
    assert line.startswith("error: source 'paged' stream 'users': page 1: GET ")
    assert line.endswith('/cursor/users: HTTP 401 Unauthorized: {"error":"unauthorized"}')
    assert TOKEN not in out + err
    assert_unchanged(destination, before)


def test_500_for_good_fails_with_one_line_and_changes_nothing(
    cli, api, server, pipeline, destination
) -> None:
    """At the defaults: 5 retries, waits of at most 0.5 + 1 + 2 + 4 + 8 s (15.5 s)."""
    path = pipeline()
    before = first_run(cli, path, destination)
    api.add("users", make_records(5, start_id=N_RECORDS + 1))
    server.inject(Fault(status=500, path="/cursor/users", nth=3, times=None))
    code, _, err = cli("run", path)
    assert code == 1
    assert error_line(err).endswith(
        "stream 'users': page 3: GET "
        f"{server.url}/cursor/users: HTTP 500 Internal Server Error after 5 retries: "
        '{"error":"internal server error"}'
    )
    assert len(server.fired) == 1 + 5
    assert_unchanged(destination, before)


@pytest.mark.parametrize("destination", ["file"], indirect=True)
def test_an_oauth_client_refused_for_good_fails_with_one_line(
    cli, write_pipeline, api, destination
) -> None:
    with FakeApiServer(api, require_oauth=True, client_secret="client-secret-77") as server:
        oauth = {
            "token_refresh_endpoint": f"{server.url}/oauth/token",
            "client_id": server.client_id,
            "client_secret": "client-secret-77",
            "grant_type": "client_credentials",
        }
        auth = {"type": "oauth", "params": oauth}
        path = write_pipeline({"base_url": server.url, "authentication": auth}, destination)
        before = first_run(cli, path, destination)
        server.client_secret = "revoked-secret-88"
        code, out, err = cli("run", path)
    assert code == 1
    line = error_line(err)
    assert line.startswith("error: OAuth2 token request to ")
    assert line.endswith(" failed with HTTP 401 (invalid_client)")
    assert "client-secret-77" not in out + err
    assert_unchanged(destination, before)
