"""`execution.per_stream`: each stream its own step, in parallel, failing and retrying alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from bizon_core.testing import Fault
from bizon_dagster import pipeline_definitions

USERS, ORDERS = dg.AssetKey(["paged", "users"]), dg.AssetKey(["paged", "orders"])
DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_each_stream_is_a_step_of_its_own(make_pipeline):
    defs = pipeline_definitions(make_pipeline(execution={"per_stream": True}))
    job = defs.resolve_job_def("bizon_paged_sync_job")
    assert sorted(node.name for node in job.nodes) == [
        "bizon_paged_sync__orders",
        "bizon_paged_sync__users",
    ]


def test_a_failed_stream_fails_alone_and_the_other_keeps_its_load(make_pipeline, instance, server):
    server.inject(Fault(status=500, path="/cursor/orders", times=None))
    defs = pipeline_definitions(make_pipeline(execution={"per_stream": True}))
    result = defs.resolve_job_def("bizon_paged_sync_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    steps = {
        e.step_key: e.event_type_value
        for e in result.all_events
        if e.is_step_success or e.is_step_failure
    }
    assert steps == {
        "bizon_paged_sync__users": "STEP_SUCCESS",
        "bizon_paged_sync__orders": "STEP_FAILURE",
    }
    assert instance.get_latest_materialization_event(USERS) is not None
    assert instance.get_latest_materialization_event(ORDERS) is None


def test_the_multiprocess_executor_runs_two_streams_at_once(make_pipeline, home, server, tmp_path):
    # Each stream's first page takes 4 s: run one after the other, they could not overlap.
    server.inject(
        Fault("delay", seconds=4, path="/cursor/users"),
        Fault("delay", seconds=4, path="/cursor/orders"),
    )
    make_pipeline(directory=tmp_path / "pipelines", execution={"per_stream": True})
    done = subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "--select",
            "paged/users,paged/orders",
            "-m",
            "bizon_dagster.definitions",
        ],
        env={**os.environ, "BIZON_PIPELINES_DIR": str(tmp_path / "pipelines")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        spans = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is not None and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                spans.setdefault(event.step_key, []).append(entry.timestamp)
    (a_start, a_end), (b_start, b_end) = spans.values()
    assert len(spans) == 2 and a_start < b_end and b_start < a_end  # the two steps overlap
