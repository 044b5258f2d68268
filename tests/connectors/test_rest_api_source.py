"""The declarative `rest_api` source: the example pipeline against the local demo API, through
the CLI and `dagster asset materialize`; each auth type; one clear error per wrong key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import yaml

from bizon_core.testing import FakeApiServer
from bizon_core.testing.server import demo_api

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "connectors" / "sources" / "rest_api" / "config" / "rest_api.example.yml"
TOKEN = "demo-t0ken-5150"
STREAMS = ("users", "orders", "user_orders")


@pytest.fixture
def demo():
    api = demo_api()
    with FakeApiServer(api, required_headers={"Authorization": f"Bearer {TOKEN}"}) as server:
        yield server


@pytest.fixture
def example(tmp_path, demo, monkeypatch) -> Path:
    """The shipped example, pointed at this test's server and database."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config["source"]["base_url"] = demo.url
    config["destination"]["config"]["path"] = str(tmp_path / "demo.duckdb")
    monkeypatch.setenv("DEMO_API_TOKEN", TOKEN)
    directory = tmp_path / "pipelines"
    directory.mkdir()
    path = directory / "rest_api.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def table(tmp_path: Path, stream: str) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as db:
        rows = db.execute(f'SELECT _bizon_id, name, updated_at FROM main."{stream}"').fetchall()
    return {row[0]: {"name": row[1], "updated_at": row[2]} for row in rows}


def expected_ids(api, collection: str) -> set[str]:
    return {str(r["id"]) for r in api.records(collection)}


def change_one_user_and_one_order(api) -> None:
    api.upsert("users", {**api.get("users", 7), "name": "renamed"})
    api.upsert("orders", {**api.get("orders", 1401), "name": "renamed"})


def test_the_example_runs_incrementally_through_the_cli(cli, example, demo, tmp_path):
    code, out, err = cli("run", example)
    assert code == 0, err
    for stream, collection in zip(STREAMS, ("users", "orders", "orders"), strict=True):
        assert set(table(tmp_path, stream)) == expected_ids(demo.api, collection), stream
    assert "user_orders: 75 records in 50 pages" in out  # one request per user

    change_one_user_and_one_order(demo.api)
    first = len(demo.requests)
    code, out, err = cli("run", example)
    assert code == 0, err
    assert "users: 1 records" in out and "orders: 1 records" in out
    assert "user_orders: 1 records" in out
    assert table(tmp_path, "users")["7"]["name"] == "renamed"
    assert table(tmp_path, "user_orders")["1401"]["name"] == "renamed"
    assert len(table(tmp_path, "orders")) == 75
    # The API filtered users (the parameter was sent), but user_orders read every user
    # (its parent) in full; orders were filtered here.
    second = demo.requests[first:]
    users_filtered = ["updated_after" in r.query for r in second if r.path == "/cursor/users"]
    assert users_filtered.count(True) == 1 and users_filtered.count(False) == 3
    assert not any("updated_after" in r.query for r in second if r.path == "/link/orders")
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in demo.requests)


def test_the_example_materializes_with_dagster(example, demo, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "BIZON_PIPELINES_DIR": str(example.parent)}
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "--select", "*"]
    command += ["-m", "bizon_dagster.definitions"]
    for run_number in range(2):
        if run_number:
            change_one_user_and_one_order(demo.api)
        run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        assert TOKEN not in run.stdout + run.stderr

    assert table(tmp_path, "users")["7"]["name"] == "renamed"
    assert len(table(tmp_path, "user_orders")) == 75
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for stream in STREAMS:
            event = instance.get_latest_materialization_event(dg.AssetKey(["rest_api", stream]))
            metadata = event.asset_materialization.metadata
            assert metadata["bizon/records"].value == 1, stream  # only the change
            assert metadata["bizon/fetched_after"].value != "(full fetch)"


@pytest.mark.parametrize(
    ("authentication", "server_requires"),
    [
        (
            {
                "type": "api_key",
                "params": {"token": TOKEN, "auth_header": "X-API-Key", "auth_method": ""},
            },
            {"required_headers": {"X-API-Key": TOKEN}},
        ),
        (
            {"type": "api_key", "params": {"token": TOKEN, "query_param": "api_key"}},
            {"required_query": {"api_key": TOKEN}},
        ),
        (
            {"type": "basic", "params": {"username": "ada", "password": TOKEN}},
            {"required_headers": {"Authorization": "Basic YWRhOmRlbW8tdDBrZW4tNTE1MA=="}},
        ),
        (
            {
                "type": "oauth",
                "params": {
                    "grant_type": "client_credentials",
                    "client_id": "client-id",
                    "client_secret": TOKEN,
                    "token_refresh_endpoint": "{url}/oauth/token",
                },
            },
            {"require_oauth": True, "client_secret": TOKEN},
        ),
        (
            {
                "type": "oauth",
                "params": {
                    "client_id": "client-id",
                    "client_secret": TOKEN,
                    "refresh_token": "refresh-t0ken",
                    "token_refresh_endpoint": "{url}/oauth/token",
                },
            },
            {"require_oauth": True, "client_secret": TOKEN, "refresh_token": "refresh-t0ken"},
        ),
    ],
    ids=["api_key_header", "api_key_query", "basic", "oauth_client_credentials", "oauth_refresh"],
)
def test_each_auth_type_reads_every_page(cli, write_pipeline, authentication, server_requires):
    with FakeApiServer(demo_api(), **server_requires) as server:
        params = authentication["params"]
        if "token_refresh_endpoint" in params:
            params["token_refresh_endpoint"] = params["token_refresh_endpoint"].format(
                url=server.url
            )
        path = write_pipeline(
            {
                "name": "rest_api",
                "stream": "users",
                "base_url": server.url,
                "authentication": authentication,
                "paginator": {"type": "offset", "limit": 20, "total_path": "total"},
                "endpoints": {"users": {"path": "offset/users", "records_path": "items"}},
            }
        )
        code, out, err = cli("run", path)
        assert code == 0, err
        assert "users: 50 records in 3 pages" in out
        assert not any(
            r.path != "/oauth/token" and "unauthorized" in r.path for r in server.requests
        )
        assert TOKEN not in out + err


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"endpoints": {"users": {"path": "cursor/users", "records_pth": "items"}}},
            "source.endpoints.users.records_pth: unknown field (did you mean 'records_path'?)",
        ),
        (
            {"endpoints": {"users": {"path": "x", "paginator": {"type": "cursr"}}}},
            "source.endpoints.users.paginator: Input tag 'cursr' found using 'type' does not "
            "match any of the expected tags: 'single_page', 'cursor'",
        ),
        (
            {"paginator": {"type": "cursor", "cursor_pth": "next"}},
            "source.paginator.cursor_pth: unknown field (did you mean 'cursor_path'?)",
        ),
        (
            {"paginator": {"type": "offset", "limit": 0}},
            "source.paginator.limit: Input should be greater than or equal to 1",
        ),
        (
            {"endpoints": {"users": {"path": "x", "incremental": {"start": "yesterday"}}}},
            "source.endpoints.users.incremental.start: Input should be 'last_run' or 'max_cursor'",
        ),
        (
            {
                "endpoints": {
                    "users": {"path": "x", "parent": {"stream": "teams", "fields": {"a": "id"}}}
                }
            },
            "source: endpoints.users.parent.stream: no endpoint 'teams'",
        ),
        ({"endpoints": {}}, "source.endpoints: Dictionary should have at least 1 item"),
        ({"endpoints": {"orders": {"path": "x"}}}, "unknown stream 'users' of source 'rest_api'"),
        ({"base_url": None}, "source.base_url:"),
    ],
    ids=[
        "endpoint_key",
        "paginator_type",
        "paginator_key",
        "paginator_value",
        "incremental_start",
        "parent",
        "no_endpoints",
        "undeclared_stream",
        "base_url",
    ],
)
def test_a_wrong_key_gets_one_line_naming_it(cli, write_pipeline, change, fragment):
    source = {
        "name": "rest_api",
        "stream": "users",
        "base_url": "http://127.0.0.1:9",
        "endpoints": {"users": {"path": "cursor/users"}},
        **change,
    }
    code, out, err = cli(
        "check", write_pipeline({k: v for k, v in source.items() if v is not None})
    )
    assert code == 2, out + err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and fragment in error_lines[0], err
    assert "Traceback" not in err


def test_source_list_says_the_streams_are_in_the_config(cli):
    code, out, _ = cli("source", "list")
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("rest_api "))
    assert row[1:4] == ["in", "config", "yes"]


def test_stream_list_reads_the_streams_of_a_pipeline(cli, example):
    code, out, _ = cli("stream", "list", example)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(STREAMS)
    code, _, err = cli("stream", "list", "rest_api")
    assert code == 2 and "declares its streams in a pipeline's config" in err
