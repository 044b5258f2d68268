"""`bizon run --explain`: each request, retry and page decision, the state a run would leave;
nothing written to the destination, no state saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing import FakeApiServer, Fault

TOKEN = "explain-t0ken-8080"
KEY = StreamKey("test_pipeline", "rest_api", "users")


@pytest.fixture
def api_server(api):
    with FakeApiServer(api, required_headers={"Authorization": f"Bearer {TOKEN}"}) as server:
        yield server


@pytest.fixture
def pipeline(write_pipeline, api_server, tmp_path):
    return write_pipeline(
        {
            "name": "rest_api",
            "stream": "users",
            "sync_mode": "incremental",
            "base_url": api_server.url,
            "authentication": {"type": "bearer", "params": {"token": TOKEN}},
            "paginator": {"type": "cursor", "cursor_path": "next_cursor", "param": "cursor"},
            "endpoints": {
                "users": {
                    "path": "cursor/users",
                    "records_path": "items",
                    "params": {"limit": 10},
                    "incremental": {"param": "updated_after", "cursor_field": "updated_at"},
                }
            },
        }
    )


def body_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


def test_a_first_explain_shows_every_request_and_writes_nothing(cli, pipeline, api_server):
    code, out, err = cli("run", pipeline, "--explain")
    assert code == 0, err
    lines = body_lines(out)
    assert lines[:3] == [
        "users: explain — nothing is written and no state is saved",
        "incremental, no previous successful run: every record",
        "destination 'file': not contacted",
    ]
    requests = [line for line in lines if line.startswith("GET ")]
    assert len(requests) == 3 == len(api_server.requests)
    assert requests[0].startswith(f"GET {api_server.url}/cursor/users?limit=10 -> 200, ")
    assert "page 3: 5 records, next_pagination {}" in lines
    assert "CursorPaginator stopped: token null or empty" in lines
    assert "fetched 25 records in 3 pages" in lines
    assert any(line.startswith("state after a real run: last_run ") for line in lines)
    assert TOKEN not in out + err
    assert not Path(".bizon").exists() and not Path("out").exists()


def test_an_incremental_explain_uses_the_runs_last_run_and_saves_nothing(
    cli, pipeline, api, api_server
):
    assert cli("run", pipeline)[0] == 0
    store = SqliteStateStore()
    last = store.last_success(KEY)
    written = Path("out/users.jsonl").read_bytes()
    api.upsert("users", {**api.get("users", 4), "name": "changed"})
    before = len(api_server.requests)

    code, out, err = cli("run", pipeline, "--explain")
    assert code == 0, err
    assert f"incremental: records changed after {last.started_at.isoformat()}" in out
    sent = api_server.requests[before:]
    assert len(sent) == 1 and sent[0].query["updated_after"] == last.started_at.isoformat()
    assert "page 1: 1 records, next_pagination {}" in body_lines(out)
    assert store.last_success(KEY) == last and store.resume_point(KEY) is None
    assert Path("out/users.jsonl").read_bytes() == written


def test_retries_and_their_waits_are_shown(cli, pipeline, api_server):
    api_server.inject(Fault(status=429, headers={"Retry-After": "1"}))
    code, out, err = cli("run", pipeline, "--explain")
    assert code == 0, err
    lines = body_lines(out)
    retry = next(i for i, line in enumerate(lines) if "HTTP 429" in line)
    assert lines[retry].endswith("HTTP 429; retry 1 of 5 in 1.00s")
    assert lines[retry + 1].startswith(f"GET {api_server.url}/cursor/users?limit=10 -> 200")


def test_max_records_stops_early_and_says_the_state_is_unchanged(cli, pipeline, api_server):
    code, out, err = cli("run", pipeline, "--explain", "--max-records", "12")
    assert code == 0, err
    lines = body_lines(out)
    assert len(api_server.requests) == 2
    assert any(line.startswith("stopped after 20 records (--max-records 12)") for line in lines)
    assert "state: unchanged (the stream was not read to its end)" in lines


def test_a_failed_request_shows_what_happened_then_one_error_line(cli, pipeline, api_server):
    api_server.inject(Fault(status=404, times=None, path="/cursor/users"))
    code, out, err = cli("run", pipeline, "--explain")
    assert code == 1
    assert f"GET {api_server.url}/cursor/users?limit=10 -> 404" in out
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "404" in errors[0] and "Traceback" not in err
    assert not Path(".bizon").exists()


def test_max_records_needs_explain(cli, pipeline):
    code, _, err = cli("run", pipeline, "--max-records", "5")
    assert code == 2 and "--max-records goes with --explain" in err
