"""The asset factory on a real DagsterInstance, against a real local API server."""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson

from bizon_core import cursor_instant
from bizon_core.testing import Fault
from bizon_dagster import BizonStream, BizonTranslator, bizon_assets
from bizon_dagster import assets as assets_module
from bizon_dagster.state import read_success

USERS = dg.AssetKey(["paged", "users"])
ORDERS = dg.AssetKey(["paged", "orders"])


def metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    event = instance.get_latest_materialization_event(key)
    assert event is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def messages(instance: dg.DagsterInstance, run_id: str, text: str) -> list[dg.EventLogEntry]:
    """The entries of the run's event log whose message contains `text`."""
    return [e for e in instance.all_logs(run_id) if text in (e.user_message or "")]


def compute_log_lines(tmp_path: Path, run_id: str, text: str) -> list[str]:
    """The lines of the run's captured stderr that contain `text`."""
    logs = (tmp_path / "dagster_home" / "storage" / run_id / "compute_logs").glob("*.err")
    return [line for f in logs for line in f.read_text().splitlines() if text in line]


def test_specs_show_keys_group_kinds_and_no_secret(make_pipeline, monkeypatch):
    monkeypatch.setenv("PAGED_TOKEN", "tok-3xyz-secret")
    pipeline = make_pipeline(
        source={"authentication": {"type": "bearer", "params": {"token": "env://PAGED_TOKEN"}}}
    )
    assets = bizon_assets(pipeline)
    specs = {spec.key: spec for spec in assets.specs}
    assert set(specs) == {USERS, ORDERS}
    users = specs[USERS]
    assert users.group_name == "paged_sync"  # the pipeline
    assert users.kinds == {"bizon", "file"}
    assert "Reads a collection of the fake API server" in users.description
    assert users.metadata["bizon/sync_mode"] == "incremental"
    assert users.metadata["bizon/cursor_field"] == "updated_at"
    assert assets.op.pool == "bizon_paged_sync"
    assert "tok-3xyz-secret" not in repr(assets.specs) + repr(assets.op.tags)


def test_translator_changes_keys_and_owners(make_pipeline):
    class Prefixed(BizonTranslator):
        def get_asset_spec(self, stream: BizonStream) -> dg.AssetSpec:
            spec = super().get_asset_spec(stream)
            return spec.replace_attributes(
                key=spec.key.with_prefix("raw"), owners=["team:data"], group_name="ingest"
            )

    assets = bizon_assets(make_pipeline(), translator=Prefixed())
    spec = next(s for s in assets.specs if s.key == USERS.with_prefix("raw"))
    assert (spec.owners, spec.group_name) == (["team:data"], "ingest")


def test_second_materialization_reads_the_cursor_from_the_first(
    make_pipeline, instance, server, api, tmp_path
):
    assets = bizon_assets(make_pipeline())
    assert dg.materialize([assets], instance=instance, selection=[USERS]).success
    first = metadata(instance, USERS)
    assert first["dagster/row_count"] == 25
    assert first["bizon/fetched_after"] == "(full fetch)"
    highest = max(cursor_instant(r["updated_at"]) for r in api.records("users"))
    assert first["bizon/max_cursor"] == highest.isoformat()

    api.upsert("users", {**api.get("users", 4), "name": "changed"})
    assert dg.materialize([assets], instance=instance, selection=[USERS]).success
    second = metadata(instance, USERS)
    assert second["dagster/row_count"] == 1
    assert second["bizon/fetched_after"] == first["bizon/last_run"]
    assert second["bizon/last_run"] > first["bizon/last_run"]
    changed = cursor_instant(api.get("users", 4)["updated_at"]).isoformat()
    assert second["bizon/max_cursor"] == changed
    assert read_success(instance, USERS).state == {"max_cursor": changed}
    incremental = [r for r in server.requests if r.query.get("updated_after")]
    assert (
        incremental
        and incremental[0].query["updated_after"].replace(" ", "+") == first["bizon/last_run"]
    )
    assert ids(tmp_path / "out/paged_sync/users.jsonl") == [str(i) for i in range(1, 26)] + ["4"]


def test_an_incremental_run_that_finds_nothing_still_materializes(make_pipeline, instance):
    assets = bizon_assets(make_pipeline())
    dg.materialize([assets], instance=instance, selection=[USERS])
    first = metadata(instance, USERS)
    dg.materialize([assets], instance=instance, selection=[USERS])
    second = metadata(instance, USERS)
    assert second["dagster/row_count"] == 0
    assert second["bizon/last_run"] > first["bizon/last_run"]


def test_subset_selection_runs_only_the_selected_streams(make_pipeline, instance, server):
    assets = bizon_assets(make_pipeline())
    result = dg.materialize([assets], instance=instance, selection=[ORDERS])
    assert result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [ORDERS]
    assert not [r for r in server.requests if "/users" in r.path]
    assert instance.get_latest_materialization_event(USERS) is None


def test_a_failed_stream_keeps_its_cursor_and_the_retry_resumes_without_duplicates(
    make_pipeline, instance, server, tmp_path
):
    pipeline = make_pipeline(
        source={"streams": ["users"], "page_size": 5},
        destination={"config": {"path": str(tmp_path / "users.jsonl"), "flush_every": 5}},
    )
    assets = bizon_assets(pipeline)
    assert dg.materialize([assets], instance=instance).success
    before = metadata(instance, USERS)
    for i in range(26, 41):
        server.api.upsert("users", {"id": i, "name": f"new-{i}"})

    server.inject(Fault(status=500, path="/cursor/users", nth=3))
    failed = dg.materialize([assets], instance=instance, raise_on_error=False)
    assert not failed.success
    assert metadata(instance, USERS) == before
    observations = instance.fetch_observations(USERS, limit=1).records
    observed = observations[0].event_log_entry.asset_observation.metadata
    assert observed["bizon/checkpoint"].value["records"] == 10
    # Keys of their own: the asset's `bizon/records` plot shows only committed syncs.
    assert observed["bizon/checkpoint_records"].value == 10
    assert observed["bizon/checkpoint_pages"].value == 2
    assert "bizon/records" not in observed and "bizon/pages" not in observed

    assert dg.materialize([assets], instance=instance).success
    after = metadata(instance, USERS)
    assert after["bizon/resumed_after_records"] == 10
    assert after["dagster/row_count"] == 15
    assert after["bizon/fetched_after"] == before["bizon/last_run"]
    assert ids(tmp_path / "users.jsonl") == [str(i) for i in range(1, 41)]


def test_a_step_retry_resumes_from_its_checkpoint_in_the_same_run(
    make_pipeline, instance, server, tmp_path
):
    # Shipped defaults but the retry delay: HTTP retries on, the default checkpoint
    # interval, and the source fails in the first second of the step.
    pipeline = make_pipeline(
        source={
            "streams": ["users"],
            "page_size": 5,
            "sync_mode": "full_refresh",
            "fail_on_page": 4,
            "http": {},
        },
        destination={"config": {"path": str(tmp_path / "users.jsonl"), "flush_every": 5}},
        retries={"delay_seconds": 0},
    )
    result = dg.materialize([bizon_assets(pipeline)], instance=instance)
    assert result.success
    done = metadata(instance, USERS)
    assert done["bizon/resumed_after_records"] == 15
    assert done["dagster/row_count"] == 25
    assert ids(tmp_path / "users.jsonl") == [str(i) for i in range(1, 26)]
    pages = [r for r in server.requests if r.path == "/cursor/users"]
    assert len(pages) == 5  # pages 1-3, then 4 and 5 after resuming; nothing twice
    # The rate is this attempt's: its 10 records over its own time, not the run's 25.
    assert (done["bizon/records"], done["bizon/attempt_records"]) == (25, 10)
    rate = done["bizon/records_per_second"]
    assert math.isclose(rate, 10 / done["bizon/duration_seconds"], rel_tol=0.05)
    assert messages(instance, result.run_id, "after 15 records from")  # "resuming run ..."


def test_at_the_shipped_defaults_a_step_retry_resumes_after_the_pages_written(
    make_pipeline, instance, server, tmp_path
):
    # Every setting at its default (the step retry waits its 30 s, jittered); only the
    # page size shapes the data, and the source fails on page 4, early in the step.
    pipeline = make_pipeline(
        source={"streams": ["users"], "page_size": 5, "fail_on_page": 4, "http": {}},
        destination={"config": {"path": str(tmp_path / "users.jsonl")}},
        retries={},
    )
    assert dg.materialize([bizon_assets(pipeline)], instance=instance).success
    assert metadata(instance, USERS)["bizon/resumed_after_records"] == 15
    assert ids(tmp_path / "users.jsonl") == [str(i) for i in range(1, 26)]
    assert len([r for r in server.requests if r.path == "/cursor/users"]) == 5


KILLED_AFTER_COMMIT = """
import dataclasses, os, signal, sys
import dagster as dg
from bizon_core.config import load_pipeline
from bizon_dagster import bizon_assets

pipeline = load_pipeline(sys.argv[1])

class DiesAfterCommit(pipeline.destination_class):
    def commit(self):
        super().commit()
        os.kill(os.getpid(), signal.SIGKILL)  # before the materialization is stored

pipeline = dataclasses.replace(pipeline, destination_class=DiesAfterCommit)
instance = dg.DagsterInstance.from_ref(dg.deserialize_value(sys.argv[2]))
dg.materialize([bizon_assets(pipeline)], instance=instance)
"""


def kill_once_committed(script: str, make_pipeline, instance, server, tmp_path):
    """A first run of 25 records, 5 new ones, then a run that `script` kills once the
    destination committed them: (assets, output file, the dead run)."""
    output = tmp_path / "users.jsonl"
    pipeline = make_pipeline(
        source={"streams": ["users"], "http": {}},
        destination={"config": {"path": str(output)}},
    )
    assets = bizon_assets(pipeline)
    assert dg.materialize([assets], instance=instance).success
    for i in range(26, 31):
        server.api.upsert("users", {"id": i, "name": f"new-{i}"})
    path = tmp_path / "killed.py"
    path.write_text(script)
    killed = subprocess.run(
        [sys.executable, str(path), str(pipeline.path), dg.serialize_value(instance.get_ref())],
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len(ids(output)) == 30  # committed: the five new records were appended
    (dead,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return assets, output, dead


def test_a_run_killed_between_its_commit_and_its_materialization_appends_nothing_twice(
    make_pipeline, instance, server, tmp_path
):
    assets, output, _ = kill_once_committed(
        KILLED_AFTER_COMMIT, make_pipeline, instance, server, tmp_path
    )
    assert dg.materialize([assets], instance=instance).success  # frees the dead holder
    assert ids(output) == [str(i) for i in range(1, 31)]  # not 35 lines: nothing appended again
    assert metadata(instance, USERS)["bizon/resumed_after_records"] == 5


KILLED_BEFORE_MATERIALIZATION = """
import os, signal, sys
import dagster as dg
import bizon_dagster.assets
from bizon_core.config import load_pipeline
from bizon_dagster import bizon_assets

def dies(result):  # called once the stream is committed, before its materialization is yielded
    os.kill(os.getpid(), signal.SIGKILL)

bizon_dagster.assets._summary = dies
instance = dg.DagsterInstance.from_ref(dg.deserialize_value(sys.argv[2]))
dg.materialize([bizon_assets(load_pipeline(sys.argv[1]))], instance=instance)
"""


def test_the_stream_stays_held_until_its_materialization_is_stored(
    make_pipeline, instance, server, tmp_path
):
    assets, output, dead = kill_once_committed(
        KILLED_BEFORE_MATERIALIZATION, make_pipeline, instance, server, tmp_path
    )
    # No other run could start in that window: the dead run still holds the stream.
    info = instance.event_log_storage.get_concurrency_info("bizon/paged_sync/paged/users")
    assert [claim.run_id for claim in info.claimed_slots] == [dead.run_id]
    assert dg.materialize([assets], instance=instance).success  # frees the dead holder
    assert ids(output) == [str(i) for i in range(1, 31)]
    assert metadata(instance, USERS)["bizon/resumed_after_records"] == 5


def test_a_checkpoint_older_than_the_last_materialization_is_ignored(
    make_pipeline, instance, server, tmp_path
):
    pipeline = make_pipeline(
        source={"streams": ["users"], "page_size": 5, "sync_mode": "full_refresh"},
        destination={"config": {"path": str(tmp_path / "users.jsonl"), "flush_every": 5}},
    )
    assets = bizon_assets(pipeline)
    server.inject(Fault(status=500, path="/cursor/users", nth=3))
    assert not dg.materialize([assets], instance=instance, raise_on_error=False).success
    assert dg.materialize([assets], instance=instance).success  # resumes, then commits
    assert dg.materialize([assets], instance=instance).success
    last = metadata(instance, USERS)
    assert "bizon/resumed_after_records" not in last
    assert last["dagster/row_count"] == 25


@dg.asset
def placeholder() -> None:
    """A trivial asset, to get the id of a real finished run."""


def test_a_stream_held_by_a_running_run_is_not_synced(make_pipeline, instance):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    slot, step = "bizon/paged_sync/paged/users", "bizon:paged/users"
    storage = instance.event_log_storage
    storage.set_concurrency_slots(slot, 1)
    running = dg.DagsterRun(job_name="elsewhere", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(running)
    assert storage.claim_concurrency_slot(slot, running.run_id, step).is_claimed

    blocked = dg.materialize([assets], instance=instance, raise_on_error=False)
    assert not blocked.success
    failure = blocked.get_step_failure_events()[0].step_failure_data.error.message
    assert "stream paged_sync/paged/users is already being synced by another Dagster run" in failure
    assert instance.get_latest_materialization_event(USERS) is None


def test_a_slot_left_by_a_finished_run_is_freed(make_pipeline, instance):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    slot = "bizon/paged_sync/paged/users"
    storage = instance.event_log_storage
    storage.set_concurrency_slots(slot, 1)
    finished = dg.materialize([placeholder], instance=instance).run_id
    assert storage.claim_concurrency_slot(slot, finished, "bizon:paged/users").is_claimed

    assert dg.materialize([assets], instance=instance).success
    assert storage.get_concurrency_info(slot).claimed_slots == []


def test_a_sql_destination_reports_its_table_in_the_metadata(instance):
    example = Path(__file__).parents[2] / "connectors/sources/dummy/config/dummy.example.yml"
    key = dg.AssetKey(["dummy", "creatures"])
    assert dg.materialize([bizon_assets(example)], instance=instance).success
    event = instance.get_latest_materialization_event(key)
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/table_name"].value == "dummy.main.creatures"
    columns = {c.name: c.type for c in metadata["dagster/column_schema"].value.columns}
    assert columns["_bizon_id"] == "VARCHAR"
    assert columns["updated_at"] == "TIMESTAMP WITH TIME ZONE"
    assert metadata["dagster/row_count"].value == 25
    assert metadata["bizon/records"].value == 25


def test_the_projects_log_lines_reach_the_event_log_once(make_pipeline, instance, tmp_path):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    dg.materialize([assets], instance=instance)
    second = dg.materialize([assets], instance=instance)
    text = "stream 'users': fetching records changed after"
    (line,) = messages(instance, second.run_id, text)
    assert line.level == logging.INFO
    assert len(compute_log_lines(tmp_path, second.run_id, text)) == 1
    assert logging.getLogger("bizon_core").handlers == []  # removed after the step


def test_an_incremental_stream_without_cursor_field_warns_in_the_event_log(
    make_pipeline, instance, tmp_path
):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"], "cursor_field": None}))
    result = dg.materialize([assets], instance=instance)
    (warning,) = messages(instance, result.run_id, "incremental without source.cursor_field")
    assert warning.level == logging.WARNING
    assert len(compute_log_lines(tmp_path, result.run_id, "without source.cursor_field")) == 1
    assert "bizon/max_cursor" not in metadata(instance, USERS)


def test_the_time_left_is_shown_for_a_full_fetch_only(make_pipeline, instance, api, monkeypatch):
    monkeypatch.setattr(assets_module, "PROGRESS_INTERVAL", 0.0)  # a line per page, to read them
    synced = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    full = dg.materialize([synced], instance=instance)
    progress = messages(instance, full.run_id, "users: 1 pages, 10 records")
    assert progress and "s left" in progress[0].user_message

    for i in (3, 4):
        api.upsert("users", {**api.get("users", i), "name": "changed"})
    incremental = dg.materialize([synced], instance=instance)
    (progress,) = messages(instance, incremental.run_id, "users: 1 pages, 2 records")
    assert "left" not in progress.user_message  # the count is the collection's, 25


def test_a_retry_warning_of_the_fetch_thread_reaches_the_event_log(make_pipeline, instance, server):
    # Default HTTP settings: the session retries the 503 from the background fetch thread.
    assets = bizon_assets(make_pipeline(source={"streams": ["users"], "http": {}}))
    server.inject(Fault(status=503, path="/cursor/users", nth=2))
    result = dg.materialize([assets], instance=instance)
    assert result.success
    (warning,) = messages(instance, result.run_id, "retry 1 of 5")
    assert warning.level == logging.WARNING
