"""The stream's concurrency slot on a real instance: dead holders are freed, live ones never."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import orjson
import pytest

from bizon_core.testing import Fault
from bizon_dagster import bizon_assets
from bizon_dagster.slot import Holder, process_alive, process_start

USERS = dg.AssetKey(["paged", "users"])
SLOT = "bizon/paged_sync/paged/users"
DAGSTER = str(Path(sys.executable).parent / "dagster")
MODULE = ("-m", "bizon_dagster.definitions")


@pytest.fixture
def shared_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def materialize_process(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen]]:
    """Start `dagster asset materialize` of paged/users in its own process group."""
    started: list[subprocess.Popen] = []

    def start(pipelines: Path) -> subprocess.Popen:
        log = (tmp_path / f"materialize-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [DAGSTER, "asset", "materialize", *("--select", "paged/users"), *MODULE],
            env={**os.environ, "BIZON_PIPELINES_DIR": str(pipelines)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition: Callable[[], object], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def claims(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    info = instance.event_log_storage.get_concurrency_info(SLOT)
    return [(s.run_id, s.step_key) for s in info.claimed_slots]


def pending(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    info = instance.event_log_storage.get_concurrency_info(SLOT)
    return [(p.run_id, p.step_key) for p in info.pending_steps]


def user_ids(tmp_path: Path) -> list[str]:
    path = tmp_path / "out/paged_sync/users.jsonl"
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return result.get_step_failure_events()[0].step_failure_data.error.message


def started_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name="elsewhere", status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    return run


def hold(instance: dg.DagsterInstance, run_id: str, step_key: str) -> None:
    storage = instance.event_log_storage
    storage.set_concurrency_slots(SLOT, 1)
    assert storage.claim_concurrency_slot(SLOT, run_id, step_key).is_claimed


def test_a_killed_materialize_does_not_block_the_rerun(
    make_pipeline, shared_instance, server, tmp_path, materialize_process
):
    pipelines = tmp_path / "pipelines"
    make_pipeline(directory=pipelines, source={"streams": ["users"]}, retries={})  # defaults
    server.inject(Fault(kind="delay", seconds=25, path="/cursor/users", nth=2))
    killed = materialize_process(pipelines)
    wait_for(lambda: claims(shared_instance) and server.pending_faults == [])
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    (run,) = shared_instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED  # nothing will ever end it
    assert [run_id for run_id, _ in claims(shared_instance)] == [run.run_id]
    assert shared_instance.get_latest_materialization_event(USERS) is None

    rerun = materialize_process(pipelines)
    # Refused, the rerun would retry for minutes at the default policy, then fail.
    assert rerun.wait(timeout=120) == 0
    (second,) = [r for r in shared_instance.get_runs() if r.run_id != run.run_id]
    retried = dg.DagsterEventType.STEP_UP_FOR_RETRY
    assert shared_instance.all_logs(second.run_id, of_type=retried) == []  # first attempt
    assert sorted(user_ids(tmp_path), key=int) == [str(i) for i in range(1, 26)]
    assert claims(shared_instance) == [] and pending(shared_instance) == []
    # Its step process and run worker are gone: the rerun marked the dead run failed.
    dead = shared_instance.get_run_by_id(run.run_id)
    assert dead.status == dg.DagsterRunStatus.FAILURE
    failures = shared_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"marked failed by run {second.run_id}" in failures[-1].message


def test_the_loser_of_two_overlapping_runs_refuses_and_later_runs_succeed(
    make_pipeline, shared_instance, server, tmp_path, materialize_process
):
    pipelines = tmp_path / "pipelines"
    # Without retries the loser ends at its refusal (with them it retries, the same way).
    pipeline = make_pipeline(directory=pipelines, source={"streams": ["users"]})
    server.inject(Fault(kind="delay", seconds=8, path="/cursor/users"))
    holder = materialize_process(pipelines)
    wait_for(lambda: claims(shared_instance) and server.pending_faults == [])
    (holder_run,) = shared_instance.get_runs()

    assets = bizon_assets(pipeline)
    loser = dg.materialize([assets], instance=shared_instance, raise_on_error=False)
    assert not loser.success
    message = failure_message(loser)
    assert "stream paged_sync/paged/users is already being synced by another Dagster run" in message
    assert f"{holder_run.run_id} (pid " in message and "which is still running" in message
    assert loser.run_id not in {run_id for run_id, _ in pending(shared_instance)}

    assert holder.wait(timeout=120) == 0  # the live holder kept its slot and finished
    assert shared_instance.get_run_by_id(holder_run.run_id).is_success
    assert dg.materialize([assets], instance=shared_instance).success  # a lone run, later
    assert dg.materialize([assets], instance=shared_instance).success
    assert claims(shared_instance) == [] and pending(shared_instance) == []


def test_a_live_holder_is_never_freed(make_pipeline, instance):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    here = started_run(instance)
    alive = Holder.this_process(here.run_id, USERS)  # this very process: alive
    hold(instance, here.run_id, alive.step_key)
    elsewhere = started_run(instance)
    remote = f"bizon:paged/users [{socket.gethostname()}-other pid 1 start 1]"
    instance.event_log_storage.claim_concurrency_slot(SLOT, elsewhere.run_id, remote)

    for _ in range(2):
        blocked = dg.materialize([assets], instance=instance, raise_on_error=False)
        assert not blocked.success
        message = failure_message(blocked)
        assert f"{here.run_id} (pid {os.getpid()} on {socket.gethostname()})" in message
    assert claims(instance) == [(here.run_id, alive.step_key)]
    assert set(pending(instance)) == {(here.run_id, alive.step_key), (elsewhere.run_id, remote)}
    assert instance.get_latest_materialization_event(USERS) is None


def test_a_holder_on_another_host_is_kept_and_the_refusal_says_how_to_clear_it(
    make_pipeline, instance
):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    elsewhere = started_run(instance)
    remote = f"bizon:paged/users [{socket.gethostname()}-other pid 1 start 1]"
    hold(instance, elsewhere.run_id, remote)
    blocked = dg.materialize([assets], instance=instance, raise_on_error=False)
    message = failure_message(blocked)
    assert f"{elsewhere.run_id} (pid 1 on {socket.gethostname()}-other); " in message
    assert f"terminate it in the Dagster UI (Runs > {elsewhere.run_id} > Terminate" in message
    assert claims(instance) == [(elsewhere.run_id, remote)]


def test_a_holder_whose_process_is_gone_is_freed_though_its_run_shows_started(
    make_pipeline, instance
):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    child = subprocess.Popen(["sleep", "60"])
    gone = Holder.this_process(started_run(instance).run_id, USERS)
    gone_key = gone.step_key.replace(
        f"pid {os.getpid()} start {gone.start}", f"pid {child.pid} start -"
    )
    child.kill()
    child.wait()
    hold(instance, gone.run_id, gone_key)
    rerun = dg.materialize([assets], instance=instance)
    assert rerun.success
    assert claims(instance) == [] and pending(instance) == []
    # Its parent (this test's parent process) lives: the run is not declared dead.
    assert instance.get_run_by_id(gone.run_id).status == dg.DagsterRunStatus.STARTED
    logged = [entry.user_message for entry in instance.all_logs(rerun.run_id)]
    assert any(
        f"held by Dagster run {gone.run_id} (pid {child.pid}" in line and "is gone" in line
        for line in logged
    )  # in the run's event log, so the UI shows which run held the slot


def test_a_pid_now_used_by_another_process_does_not_hold(make_pipeline, instance):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    me = Holder.this_process(started_run(instance).run_id, USERS)
    hold(instance, me.run_id, me.step_key.replace(f"start {me.start}", "start 1"))
    assert dg.materialize([assets], instance=instance).success
    assert claims(instance) == [] and pending(instance) == []


def test_a_pending_claim_left_by_an_old_loser_does_not_block(make_pipeline, instance):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    loser = dg.materialize([assets], instance=instance).run_id  # a finished run
    holder = started_run(instance)
    hold(instance, holder.run_id, "bizon:paged/users")
    storage = instance.event_log_storage
    assert not storage.claim_concurrency_slot(SLOT, loser, "bizon:paged/users").is_claimed
    # The holder ends: Dagster hands the slot to the loser's pending claim.
    storage.free_concurrency_slot_for_step(holder.run_id, "bizon:paged/users")
    assert pending(instance) == [(loser, "bizon:paged/users")]

    assert dg.materialize([assets], instance=instance).success
    assert claims(instance) == [] and pending(instance) == []


def test_process_liveness():
    child = subprocess.Popen(["sleep", "60"])
    start = process_start(child.pid)
    assert start is not None and process_alive(child.pid, start)
    assert not process_alive(child.pid, str(int(start) + 1))  # the pid, another process
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid, start)
    assert Holder.parse("r", "bizon:paged/users").pid is None  # a claim of an older bizon
