"""The PostgreSQL load lock after `kill -9`: a dead loader never blocks, a live one always does.

A real `bizon run` process is stopped inside its commit: a trigger on `_bizon_loads`
(armed by a row in a `gate` table) keeps its server session busy, as a long commit
statement would, so the session and its advisory lock outlive the killed client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class

IDS = [str(i) for i in range(1, 26)]
BIZON = Path(sys.executable).parent / "bizon"


@pytest.fixture
def held_commit(pg: Any) -> Iterator[Callable[[Path, Path], subprocess.Popen]]:
    """Start `bizon run` and return once its session sleeps inside the commit."""
    started: list[subprocess.Popen] = []

    def start(pipeline: Path, state: Path) -> subprocess.Popen:
        pg.query(
            f"CREATE TABLE IF NOT EXISTS {pg.name}.gate (armed boolean);"
            f" INSERT INTO {pg.name}.gate VALUES (true);"
            f" CREATE OR REPLACE FUNCTION {pg.name}.hold() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN IF EXISTS (SELECT 1 FROM {pg.name}.gate) THEN PERFORM pg_sleep(300);"
            " END IF; RETURN NEW; END $$;"
            f" CREATE OR REPLACE TRIGGER hold BEFORE INSERT ON {pg.name}._bizon_loads"
            f" FOR EACH ROW EXECUTE FUNCTION {pg.name}.hold()"
        )
        process = subprocess.Popen(
            [str(BIZON), "run", str(pipeline), "--state", str(state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 60
        while not _sleeping_sessions(pg):
            assert process.poll() is None, "the load ended before its commit was held"
            assert time.monotonic() < deadline, "the load never reached its commit"
            time.sleep(0.05)
        pg.query(f"DELETE FROM {pg.name}.gate")  # later commits are not held
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()
    pg.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        " AND application_name LIKE 'bizon:%'"
    )


def test_a_rerun_right_after_a_kill_9_mid_commit_takes_the_dead_loaders_lock(
    cli, write_pipeline, server, pg, held_commit, tmp_path
):
    path = write_pipeline({"base_url": server.url}, {"name": "postgres", "config": pg.config()})
    state = tmp_path / "state.db"
    assert cli("run", path, "--state", state)[0] == 0
    victim = held_commit(path, state)
    holders = _sleeping_sessions(pg)

    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    code, out, err = cli("run", path, "--state", state)

    assert code == 0, out + err
    assert _ids(pg) == IDS
    assert pg.query("SELECT count(*), count(DISTINCT _bizon_id) FROM users") == [(25, 25)]
    alive = pg.query("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (holders,))
    assert alive == []  # the dead loader's session was ended


def test_a_rerun_while_another_process_is_mid_load_is_refused_naming_it(
    cli, write_pipeline, server, pg, held_commit, tmp_path
):
    path = write_pipeline({"base_url": server.url}, {"name": "postgres", "config": pg.config()})
    state = tmp_path / "state.db"
    assert cli("run", path, "--state", state)[0] == 0
    other = write_pipeline(
        {"base_url": server.url},
        {"name": "postgres", "config": pg.config()},
        name="other_pipeline",
        filename="other.yml",
    )  # another pipeline loading the same table
    live = held_commit(other, tmp_path / "other-state.db")

    code, out, err = cli("run", path, "--state", state)

    assert code == 1
    expected = (
        f"destination 'postgres' table {pg.name}.users: another load into table "
        f"{pg.name}.users is running (held by process {live.pid} on "
    )
    assert expected in out + err
    assert "Traceback" not in out + err
    assert live.poll() is None  # the live load was left alone
    assert _sleeping_sessions(pg)  # and so was its session


def test_a_holder_is_gone_only_when_its_process_on_this_host_no_longer_runs():
    destination = load_connector_class(get_connector(ConnectorKind.DESTINATION, "postgres"))
    lock = sys.modules[destination.__module__.rsplit(".", 1)[0] + ".lock"]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _, host, _, _ = lock.application_name().split(":")
        start = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])

        def holder(name: str) -> Any:
            return lock.Holder(1, name, "127.0.0.1:5000", None)

        assert not holder(f"bizon:{host}:{child.pid}:{start}").is_gone()
        assert holder(f"bizon:{host}:{child.pid}:{start + 1}").is_gone()  # its pid, reused
        assert not holder(f"bizon:another-host:{child.pid}:{start + 1}").is_gone()
        assert not holder("psql").is_gone()
    finally:
        child.kill()
        child.wait()
    assert holder(f"bizon:{host}:{child.pid}:{start}").is_gone()
    assert not holder(f"bizon:another-host:{child.pid}:{start}").is_gone()


def _sleeping_sessions(pg: Any) -> list[int]:
    rows = pg.query(
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        " AND application_name LIKE 'bizon%%' AND query LIKE 'INSERT INTO%%'"
    )
    return [pid for (pid,) in rows]


def _ids(pg: Any) -> list[str]:
    rows = pg.query("SELECT _bizon_id FROM users ORDER BY _bizon_id::int")
    return [row[0] for row in rows]
