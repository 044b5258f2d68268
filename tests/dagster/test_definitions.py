"""Definitions from a pipelines directory, run as a deployment runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bizon_core.errors import ConfigError
from bizon_core.testing import FakeApiServer
from bizon_dagster import bizon_assets, build_definitions

REPO = Path(__file__).resolve().parents[2]
SECRET = "very-secret-token-5150"


def asset_keys(defs: dg.Definitions) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_the_default_definitions_show_the_dummy_examples(monkeypatch):
    monkeypatch.delenv("BIZON_PIPELINES_DIR", raising=False)
    defs = build_definitions()
    assert asset_keys(defs) == {
        "dummy/creatures",
        "oauth_demo/dummy/creatures",
        "oauth_demo/dummy/plants",
        "dummy_daily/dummy/creatures",
        "dummy_daily/dummy/plants",
    }
    # The partitioned pipeline has no new-data sensor: its partitions are its windows.
    assert {s.name for s in defs.sensors} == {
        "bizon_dummy_to_duckdb_new_data",
        "bizon_dummy_oauth_to_duckdb_new_data",
    }


def test_a_broken_pipeline_names_its_file_and_field(make_pipeline, tmp_path):
    directory = tmp_path / "pipelines"
    make_pipeline(directory=directory)
    broken = directory / "broken.yaml"
    broken.write_text(
        "name: broken\nsource: {name: paged, stream: users}\ndestination: {name: file}\n"
    )
    with pytest.raises(ConfigError, match=r"broken\.yaml: source\.base_url: required field"):
        build_definitions(directory)
    broken.write_text(
        "name: broken\nsource: {name: nope, stream: users}\ndestination: {name: file}\n"
    )
    with pytest.raises(
        ConfigError, match=r"broken\.yaml: unknown source 'nope'; available: .*paged"
    ):
        build_definitions(directory)


def test_two_pipelines_producing_one_asset_are_refused(make_pipeline, tmp_path):
    directory = tmp_path / "pipelines"
    make_pipeline(name="first", directory=directory)
    make_pipeline(name="second", directory=directory)
    with pytest.raises(
        ConfigError, match=r"second.yml: asset paged/users is also produced by .*first.yml"
    ):
        build_definitions(directory)
    make_pipeline(name="second", directory=directory, asset_key_prefix=["copy"])
    assert "copy/paged/users" in asset_keys(build_definitions(directory))


def test_secrets_never_reach_the_event_log(make_pipeline, instance, tmp_path, monkeypatch):
    monkeypatch.setenv("PAGED_TOKEN", SECRET)
    auth = {"authentication": {"type": "bearer", "params": {"token": "env://PAGED_TOKEN"}}}
    working = make_pipeline(name="working", source={"streams": ["users"], **auth})
    failing = make_pipeline(
        name="failing",
        source={
            "streams": ["users"],
            "base_url": "http://127.0.0.1:9/${env://PAGED_TOKEN}",
            **auth,
        },
        asset_key_prefix=["failing"],
    )
    assert dg.materialize([bizon_assets(working)], instance=instance).success
    failed = dg.materialize([bizon_assets(failing)], instance=instance, raise_on_error=False)
    assert not failed.success
    message = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert "/***/cursor/users" in message
    stored = b"".join(
        p.read_bytes() for p in Path(instance.root_directory).rglob("*") if p.is_file()
    )
    assert b"paged/users" in stored  # the search does look at the event log
    assert SECRET.encode() not in stored


def test_a_multiprocess_run_on_a_persistent_instance(tmp_path, api):
    """`dagster asset materialize`: each pipeline's step in its own process, state shared."""
    with FakeApiServer(api, required_headers={"Authorization": f"Bearer {SECRET}"}) as server:
        pipelines = tmp_path / "pipelines"
        pipelines.mkdir()
        for stream in ("users", "orders"):
            config = {
                "name": f"sync_{stream}",
                "source": {
                    "name": "paged",
                    "stream": stream,
                    "base_url": server.url,
                    "sync_mode": "incremental",
                    "authentication": {"type": "bearer", "params": {"token": "env://API_TOKEN"}},
                },
                "destination": {
                    "name": "file",
                    "config": {"path": str(tmp_path / "{stream}.jsonl")},
                },
            }
            (pipelines / f"{stream}.yml").write_text(yaml.safe_dump(config))
        home = tmp_path / "home"
        home.mkdir()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "BIZON_PIPELINES_DIR": str(pipelines),
            "API_TOKEN": SECRET,
        }
        dagster = Path(sys.executable).with_name("dagster")
        command = [
            str(dagster),
            "asset",
            "materialize",
            "--select",
            "*",
            "-m",
            "bizon_dagster.definitions",
        ]
        for _ in range(2):
            run = subprocess.run(
                command, env=env, cwd=tmp_path, capture_output=True, text=True, check=False
            )
            assert run.returncode == 0, run.stderr[-3000:]
            assert SECRET not in run.stdout + run.stderr

    os.environ["DAGSTER_HOME"], saved = str(home), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as persisted:
            runs = persisted.get_runs()
            assert len(runs) == 2
            for stream in ("users", "orders"):
                event = persisted.get_latest_materialization_event(dg.AssetKey(["paged", stream]))
                metadata = event.asset_materialization.metadata
                assert metadata["dagster/row_count"].value == 0  # the second run found nothing new
                assert metadata["bizon/fetched_after"].value != "(full fetch)"
            starts = persisted.get_records_for_run(
                runs[0].run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
            pids = {record.event_log_entry.dagster_event.pid for record in starts}
            assert len(starts) == 2 and len(pids) == 2
    finally:
        if saved is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = saved
