"""`bizon` commands end to end: real config files, a real local API server, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing import Fault

REPO = Path(__file__).resolve().parents[2]
DUMMY_EXAMPLE = REPO / "connectors" / "sources" / "dummy" / "config" / "dummy.example.yml"
DUMMY_OAUTH_EXAMPLE = DUMMY_EXAMPLE.with_name("dummy_oauth.example.yml")
SECRET = "s3cr3t-token-value-0042"


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def assert_one_line_error(err: str, *fragments: str) -> None:
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, err
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    assert "Traceback" not in err


def test_source_list_shows_builtin_and_path_connectors(cli):
    code, out, _ = cli("source", "list")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["dummy"][1:3] == ["creatures,plants", "yes"]
    assert rows["myapi"][1:3] == ["users,orders", "yes"]
    assert "paged" in rows


def test_stream_list_tells_incremental_streams(cli):
    code, out, _ = cli("stream", "list", "dummy")
    assert code == 0
    assert out.splitlines()[1:] == ["creatures  incremental", "plants     incremental"]


def test_stream_list_of_an_unknown_source_lists_the_available_ones(cli):
    code, _, err = cli("stream", "list", "nope")
    assert code == 2
    assert_one_line_error(err, "unknown source 'nope'; available:", "dummy")


def test_dummy_example_loads_a_typed_duckdb_table_then_runs_incrementally(cli):
    code, out, _ = cli("run", DUMMY_EXAMPLE)
    assert code == 0, out
    assert "creatures: 25 records in 3 pages" in out
    with duckdb.connect(".bizon/dummy.duckdb", read_only=True) as db:
        ids = [row[0] for row in db.execute('SELECT _bizon_id FROM main."creatures"').fetchall()]
        types = dict(
            db.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'creatures'"
            ).fetchall()
        )
    assert sorted(ids, key=int) == [str(i) for i in range(1, 26)]
    assert (types["id"], types["age"], types["updated_at"]) == (
        "BIGINT",
        "BIGINT",
        "TIMESTAMP WITH TIME ZONE",
    )

    code, out, _ = cli("run", DUMMY_EXAMPLE)
    assert code == 0
    assert "creatures: 0 records in 1 pages" in out and "incremental after" in out
    with duckdb.connect(".bizon/dummy.duckdb", read_only=True) as db:
        assert db.execute('SELECT count(*) FROM main."creatures"').fetchone() == (25,)


def test_dummy_oauth_example_runs_both_streams_and_checks(cli):
    code, out, err = cli("check", DUMMY_OAUTH_EXAMPLE)
    assert code == 0, err
    assert "stream 'creatures': connection OK" in out and "stream 'plants': connection OK" in out
    code, out, err = cli("run", DUMMY_OAUTH_EXAMPLE)
    assert code == 0, err
    assert "creatures: 25 records in 5 pages" in out and "plants: 25 records in 5 pages" in out
    assert "dummy-client-secret" not in out + err


def test_check_reports_a_failed_connection(cli, write_pipeline):
    path = write_pipeline({"base_url": "http://127.0.0.1:9", "http": {"max_retries": 0}})
    code, out, _ = cli("check", path)
    assert code == 1
    assert "stream 'users': connection FAILED" in out


def test_seed_example_connector_runs_from_the_connectors_path(cli, myapi):
    example = REPO / "tests/fixtures/connectors/sources/myapi/config/myapi.example.yml"
    code, out, err = cli("check", example)
    assert code == 0, err
    code, out, err = cli("run", example)
    assert code == 0, err
    assert "users: 25 records in 9 pages" in out


@pytest.mark.parametrize("stream", ["users", "orders"])
def test_seed_incremental_scenario(stream, cli, myapi, api, write_pipeline):
    """The guide's "Testing Incremental Sync": the second run fetches only what changed."""
    path = write_pipeline(
        {
            "name": "myapi",
            "stream": stream,
            "sync_mode": "incremental",
            "cursor_field": "updated_at",
            "authentication": {"type": "api_key", "params": {"token": "t0ken-abcd"}},
        }
    )
    code, out, err = cli("run", path)
    assert code == 0, err
    assert f"{stream}: 25 records" in out

    api.upsert(stream, {**api.get(stream, 7), "name": "edited"})
    code, out, err = cli("run", path)
    assert code == 0, err
    assert f"{stream}: 1 records" in out and "incremental after" in out
    edited = lines(Path("out") / f"{stream}.jsonl")[-1]
    assert (edited["id"], edited["data"]["name"]) == ("7", "edited")
    assert all(r.headers.get("Authorization") == "Bearer t0ken-abcd" for r in myapi.requests)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("name: x\nsource: [unclosed\n", ["malformed YAML (line 3, column 1)"]),
        ("- just\n- a list\n", ["must be a mapping"]),
        (
            "name: x\nsource: {name: paged}\ndestination: {name: file}\n",
            ["source: give exactly one"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users}\ndestination: {name: file}\n",
            ["source.base_url: required field is missing"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users, base_url: u, sync_mod: full_refresh}\n"
            "destination: {name: file}\n",
            ["source.sync_mod: unknown field"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users, base_url: u, page_size: lots}\n"
            "destination: {name: file}\n",
            ["source.page_size: Input should be a valid integer"],
        ),
        (
            "name: x\nsource: {name: nope, stream: users}\ndestination: {name: file}\n",
            ["unknown source 'nope'; available:", "dummy", "paged"],
        ),
        (
            "name: x\nsource: {name: paged, stream: nope, base_url: u}\n"
            "destination: {name: file}\n",
            ["source.stream: unknown stream 'nope' of source 'paged'; available: users, orders"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users, base_url: u}\n"
            "destination: {name: file, config: {flush_every: 0}}\n",
            ["destination.config.flush_every: Input should be greater than 0"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users, base_url: u, authentication: "
            "{type: basic, params: {username: me}}}\ndestination: {name: logger}\n",
            ["source.authentication.params.password: required field is missing"],
        ),
        (
            "name: x\nsource: {name: paged, stream: users, base_url: 'env://NOT_SET_ANYWHERE'}\n"
            "destination: {name: logger}\n",
            ["source.base_url: environment variable NOT_SET_ANYWHERE is not set"],
        ),
    ],
)
def test_bad_configs_give_one_line_and_exit_2(text, fragments, cli, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    for command in ("run", "check"):
        code, _, err = cli(command, path)
        assert code == 2
        assert_one_line_error(err, str(path), *fragments)
    assert (
        not Path(".bizon/state.db").exists()
        or SqliteStateStore().last_success(StreamKey("x", "paged", "users")) is None
    )


def test_a_missing_config_file_exits_2(cli, tmp_path):
    code, _, err = cli("run", tmp_path / "nope.yml")
    assert code == 2
    assert_one_line_error(err, "nope.yml: cannot read pipeline config")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"fail_on_page": 2}, "page 2: RuntimeError: boom on page 2"),
        ({"id_field": "nope"}, "page 1: a record has no id"),
        ({"repeat_pagination": True}, "the source's pagination loops"),
    ],
)
def test_a_failed_run_exits_1_and_changes_nothing(source, fragment, cli, server, write_pipeline):
    good = write_pipeline({"base_url": server.url})
    assert cli("run", good)[0] == 0
    output = Path("out/users.jsonl")
    before = output.read_bytes()
    state_before = SqliteStateStore().last_success(StreamKey("test_pipeline", "paged", "users"))

    code, _, err = cli("run", write_pipeline({"base_url": server.url, **source}))
    assert code == 1
    assert_one_line_error(err, "source 'paged' stream 'users'", fragment)
    assert output.read_bytes() == before
    assert (
        SqliteStateStore().last_success(StreamKey("test_pipeline", "paged", "users"))
        == state_before
    )


def test_a_non_json_answer_exits_1_with_one_line(cli, server, write_pipeline):
    server.inject(Fault(kind="non_json", path="/cursor/"))
    code, _, err = cli("run", write_pipeline({"base_url": server.url}))
    assert code == 1
    assert_one_line_error(err, "page 1: the API answered with something that is not JSON")
    assert not Path("out/users.jsonl").exists()


def test_secrets_never_reach_output_or_errors(cli, server, write_pipeline, monkeypatch):
    monkeypatch.setenv("API_TOKEN", SECRET)
    path = write_pipeline(
        {
            "base_url": "http://127.0.0.1:9/${env://API_TOKEN}",
            "http": {"max_retries": 1, "backoff_factor": 0.01},
            "authentication": {"type": "bearer", "params": {"token": "env://API_TOKEN"}},
        },
        {"name": "logger"},
    )
    for args in (("run", path), ("run", path, "--debug"), ("check", path)):
        code, out, err = cli(*args)
        assert code == 1
        assert SECRET not in out + err
        assert "***" in out + err


def test_debug_shows_the_traceback(cli, server, write_pipeline):
    code, _, err = cli(
        "run", write_pipeline({"base_url": server.url, "fail_on_page": 1}), "--debug"
    )
    assert code == 1
    assert "Traceback" in err and "RuntimeError: boom on page 1" in err


def test_the_installed_command_exits_2_on_a_bad_config(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: [\n")
    bizon = Path(sys.executable).with_name("bizon")
    result = subprocess.run(
        [str(bizon), "run", str(path)], capture_output=True, text=True, env=os.environ, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: malformed YAML")
