"""`bizon state show|reset|export|import` on the CLI's state store."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.fixture
def pipeline(write_pipeline, server):
    return write_pipeline(
        {
            "stream": None,
            "streams": ["users", "orders"],
            "base_url": server.url,
            "sync_mode": "incremental",
            "cursor_field": "updated_at",
        }
    )


def rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in out.splitlines()[1:]}


def test_show_tells_each_stream_s_last_run_and_cursor(cli, pipeline):
    code, out, _ = cli("state", "show", pipeline)
    assert code == 0 and rows(out)["users"][1] == "never"
    assert cli("run", pipeline)[0] == 0
    code, out, _ = cli("state", "show", pipeline)
    users = rows(out)["users"]
    assert users[2:4] == ["incremental", "25"] and users[4].startswith("2026-01-01T")
    assert users[-1] == "-"  # nothing to resume


def test_reset_makes_the_next_run_fetch_everything_for_that_stream_only(cli, pipeline, api):
    assert cli("run", pipeline)[0] == 0
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    code, out, _ = cli("state", "reset", pipeline, "--stream", "users")
    assert code == 0 and out.startswith("users: reset (1 runs, 0 checkpoints forgotten)")
    code, out, _ = cli("run", pipeline)
    assert "users: 25 records" in out and "orders: 0 records" in out


def test_export_then_import_moves_the_cursors_to_another_store(cli, pipeline, tmp_path, api):
    assert cli("run", pipeline)[0] == 0
    code, _, _ = cli("state", "export", pipeline, "-o", tmp_path / "cursors.json")
    document = json.loads((tmp_path / "cursors.json").read_text())
    assert code == 0 and set(document["streams"]) == {"users", "orders"}
    other = tmp_path / "other" / "state.db"
    code, out, _ = cli("state", "import", pipeline, tmp_path / "cursors.json", "--state", other)
    assert code == 0 and "users: cursor set to the run started" in out
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    code, out, _ = cli("run", pipeline, "--state", other)
    assert "users: 1 records" in out  # incremental from the imported cursor, not a full fetch


def test_an_export_of_another_pipeline_is_refused_in_one_line(cli, pipeline, tmp_path):
    exported = {"format": "bizon-state/1", "pipeline": "other", "source": "paged", "streams": {}}
    (tmp_path / "x.json").write_text(json.dumps(exported))
    code, out, err = cli("state", "import", pipeline, tmp_path / "x.json")
    assert code == 2 and out == ""
    assert (
        err
        == f"error: {tmp_path / 'x.json'}: exported from pipeline 'other', not 'test_pipeline'\n"
    )


def test_an_unknown_stream_is_named(cli, pipeline):
    code, _, err = cli("state", "reset", pipeline, "--stream", "nope")
    assert code == 2 and "--stream nope: not a stream of this pipeline" in err


def test_a_partitioned_pipeline_is_not_run_whole_by_the_cli(cli, write_pipeline, tmp_path, server):
    path = write_pipeline(
        {"base_url": server.url},
        destination={"name": "duckdb", "config": {"path": str(tmp_path / "d.duckdb")}},
    )
    config = yaml.safe_load(path.read_text())
    config["source"]["cursor_field"] = "updated_at"
    config["partitions"] = {"type": "daily", "start": "2026-01-01"}
    path.write_text(yaml.safe_dump(config))
    code, out, err = cli("run", path)
    assert code == 2 and out == "" and "a partitioned pipeline runs from Dagster" in err
    assert not (tmp_path / "d.duckdb").exists()
