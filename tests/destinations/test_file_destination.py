"""The built-in `file` destination, writing real files in a temporary directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import DestinationError
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord

FULL = SourceSyncModes.FULL_REFRESH
INCREMENTAL = SourceSyncModes.INCREMENTAL

MakeDestination = Callable[..., AbstractDestination]


@pytest.fixture
def make_destination(tmp_path: Path) -> MakeDestination:
    """Build a `file` destination; `path` defaults to `<tmp>/out/{stream}.jsonl`."""
    destination_class = load_connector_class(get_connector(ConnectorKind.DESTINATION, "file"))

    def make(
        sync_mode: SourceSyncModes = FULL,
        path: str | None = None,
        stream: str = "users",
        run_id: str = "run-1",
        **config: Any,
    ) -> AbstractDestination:
        config_class = destination_class.get_config_class()
        destination_config = config_class.model_validate(
            {"path": path or str(tmp_path / "out" / "{stream}.jsonl"), **config}
        )
        context = WriteContext(
            pipeline="pipe",
            source="src",
            stream=stream,
            sync_mode=sync_mode,
            run_id=run_id,
            started_at=datetime.now(UTC),
        )
        return destination_class(destination_config, context)

    return make


def records(start: int, stop: int) -> list[SourceRecord]:
    return [SourceRecord(id=str(i), data={"n": i, "name": f"r{i}"}) for i in range(start, stop)]


def ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def partial_of(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + ".commit")


def run(destination: AbstractDestination, *pages: list[SourceRecord]) -> None:
    destination.begin(None)
    for page in pages:
        destination.write(page)
    destination.commit()
    destination.finalize(True)


def test_full_refresh_writes_partial_then_renames_on_commit(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    target.parent.mkdir()
    target.write_text('{"id":"old","extracted_at":"x","data":{}}\n')
    old = target.read_bytes()

    destination = make_destination(FULL)
    destination.begin(None)
    destination.write(records(0, 3))
    destination.write(records(3, 5))

    assert target.read_bytes() == old
    assert partial_of(target).exists()

    destination.commit()
    destination.finalize(True)

    assert ids(target) == ["0", "1", "2", "3", "4"]
    assert not partial_of(target).exists()
    assert not journal_of(target).exists()
    assert destination.describe() == {"path": str(target)}


def test_a_failed_full_refresh_leaves_the_target_unchanged(
    make_destination: MakeDestination, tmp_path: Path
):
    run(make_destination(FULL), records(0, 2))
    target = tmp_path / "out" / "users.jsonl"
    before = target.read_bytes()

    destination = make_destination(FULL)
    destination.begin(None)
    destination.write(records(10, 20))
    destination.finalize(False)

    assert target.read_bytes() == before
    assert partial_of(target).exists()  # kept, so that a next attempt can resume


def test_incremental_appends_on_commit_only(make_destination: MakeDestination, tmp_path: Path):
    run(make_destination(INCREMENTAL), records(0, 2))
    target = tmp_path / "out" / "users.jsonl"
    first = target.read_bytes()
    assert ids(target) == ["0", "1"]

    destination = make_destination(INCREMENTAL)
    destination.begin(None)
    destination.write(records(2, 4))
    assert target.read_bytes() == first

    destination.commit()
    destination.finalize(True)

    assert target.read_bytes().startswith(first)
    assert ids(target) == ["0", "1", "2", "3"]
    assert not partial_of(target).exists()
    assert not journal_of(target).exists()


def test_incremental_without_a_target_creates_it(make_destination: MakeDestination, tmp_path: Path):
    run(make_destination(INCREMENTAL), records(0, 3))
    assert ids(tmp_path / "out" / "users.jsonl") == ["0", "1", "2"]


def test_path_placeholders(make_destination: MakeDestination, tmp_path: Path):
    template = str(tmp_path / "data" / "{pipeline}" / "{source}" / "{stream}.jsonl")
    destination = make_destination(FULL, path=template, stream="orders")
    run(destination, records(0, 1))

    target = tmp_path / "data" / "pipe" / "src" / "orders.jsonl"
    assert ids(target) == ["0"]
    assert destination.describe() == {"path": str(target)}


def test_relative_path_is_relative_to_the_working_directory(
    make_destination: MakeDestination, isolated: Path
):
    run(make_destination(FULL, path="rel/{pipeline}/{stream}.jsonl"), records(0, 1))
    assert ids(isolated / "rel" / "pipe" / "users.jsonl") == ["0"]


def test_lines_are_json_with_id_extracted_at_and_data(
    make_destination: MakeDestination, tmp_path: Path
):
    before = datetime.now(UTC)
    run(make_destination(FULL), [SourceRecord(id=7, data={"nested": {"a": [1, 2]}, "s": "é"})])

    lines = (tmp_path / "out" / "users.jsonl").read_bytes().splitlines()
    assert len(lines) == 1
    line = orjson.loads(lines[0])
    assert set(line) == {"id", "extracted_at", "data"}
    assert line["id"] == "7"
    assert line["data"] == {"nested": {"a": [1, 2]}, "s": "é"}
    extracted_at = datetime.fromisoformat(line["extracted_at"])
    assert extracted_at.tzinfo is not None
    assert before <= extracted_at <= datetime.now(UTC)


def test_write_returns_a_marker_once_flush_every_records_accumulated(
    make_destination: MakeDestination, tmp_path: Path
):
    destination = make_destination(FULL, flush_every=5)
    partial = partial_of(tmp_path / "out" / "users.jsonl")
    destination.begin(None)

    assert destination.write(records(0, 2)) is None
    assert destination.write(records(2, 4)) is None
    marker = destination.write(records(4, 6))  # 6 >= 5: flushed
    assert marker == {"offset": partial.stat().st_size}
    assert marker["offset"] > 0
    assert len(partial.read_bytes().splitlines()) == 6

    # The count starts again after each flush.
    assert destination.write(records(6, 10)) is None
    second = destination.write(records(10, 11))
    assert second == {"offset": partial.stat().st_size}
    assert second["offset"] > marker["offset"]
    destination.finalize(False)


def test_resume_truncates_to_the_marker_and_continues(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    first = make_destination(FULL, flush_every=3)
    first.begin(None)
    marker = first.write(records(0, 3))
    assert marker is not None
    first.write(records(3, 5))  # not checkpointed: lost with the failed attempt
    first.finalize(False)
    assert partial_of(target).stat().st_size > marker["offset"]

    second = make_destination(FULL, flush_every=3)
    second.begin(marker)
    assert partial_of(target).stat().st_size == marker["offset"]
    second.write(records(3, 7))
    second.commit()
    second.finalize(True)

    assert ids(target) == [str(i) for i in range(7)]


def test_resume_of_an_incremental_run_appends_only_once(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    run(make_destination(INCREMENTAL), records(0, 2))

    first = make_destination(INCREMENTAL, run_id="run-2", flush_every=2)
    first.begin(None)
    marker = first.write(records(2, 4))
    first.write(records(4, 5))
    first.finalize(False)
    assert ids(target) == ["0", "1"]

    second = make_destination(INCREMENTAL, run_id="run-2", flush_every=2)
    second.begin(marker)
    second.write(records(4, 6))
    second.commit()
    second.finalize(True)

    assert ids(target) == [str(i) for i in range(6)]


def test_resume_with_a_missing_partial_file_fails_clearly(make_destination: MakeDestination):
    destination = make_destination(FULL)
    with pytest.raises(DestinationError, match=r"cannot resume .*users\.jsonl\.partial.*missing"):
        destination.begin({"offset": 10})
    destination.finalize(False)


def test_resume_with_a_shorter_partial_file_fails_clearly(
    make_destination: MakeDestination, tmp_path: Path
):
    partial = partial_of(tmp_path / "out" / "users.jsonl")
    partial.parent.mkdir()
    partial.write_bytes(b"0123456789")

    destination = make_destination(FULL)
    with pytest.raises(DestinationError, match="shorter than its checkpoint"):
        destination.begin({"offset": 11})
    destination.finalize(False)
    assert partial.read_bytes() == b"0123456789"  # not truncated nor extended


def test_an_interrupted_incremental_commit_is_rolled_back_by_the_next_begin(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    run(make_destination(INCREMENTAL), records(0, 3))
    committed = target.read_bytes()

    # What a crash in the middle of the append leaves: the journal and half a line.
    journal_of(target).write_bytes(orjson.dumps({"run_id": "run-2", "size": len(committed)}))
    with open(target, "ab") as handle:
        handle.write(b'{"id":"3","extracted_at":"2026-01-01T00:00:00+00:00","da')

    destination = make_destination(INCREMENTAL)
    destination.begin(None)
    assert target.read_bytes() == committed
    assert not journal_of(target).exists()

    destination.write(records(3, 4))
    destination.commit()
    destination.finalize(True)
    assert ids(target) == ["0", "1", "2", "3"]


def test_an_interrupted_replace_is_finished_by_the_next_begin(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    run(make_destination(FULL, run_id="run-1"), records(0, 2))
    # A crash after the rename and before the committed marker: journal, no partial.
    journal_of(target).write_bytes(orjson.dumps({"run_id": "run-2"}))
    resumed = make_destination(FULL, run_id="run-2")
    resumed.begin({"offset": 0})
    assert resumed.write(records(5, 6)) is None  # committed already: nothing rewritten
    resumed.commit()
    resumed.finalize(True)
    assert ids(target) == ["0", "1"]
    assert not journal_of(target).exists()


def test_a_committed_run_resumed_writes_nothing_twice(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    run(make_destination(INCREMENTAL, run_id="run-1"), records(0, 2))
    run(make_destination(INCREMENTAL, run_id="run-2"), records(2, 4))
    # The cursor of run-2 did not move (a crash after commit): the runner resumes it.
    resumed = make_destination(INCREMENTAL, run_id="run-2")
    resumed.begin({"offset": 0})
    resumed.write(records(3, 4))
    resumed.commit()
    resumed.finalize(True)
    assert ids(target) == ["0", "1", "2", "3"]


def test_finalize_without_begin_is_harmless(make_destination: MakeDestination):
    make_destination(FULL).finalize(False)


def test_check_connection_accepts_a_writable_directory(
    make_destination: MakeDestination, tmp_path: Path
):
    template = str(tmp_path / "not" / "yet" / "there" / "{stream}.jsonl")
    assert make_destination(FULL, path=template).check_connection() == (True, None)
    assert not (tmp_path / "not").exists()  # checking creates nothing


def test_check_connection_reports_a_read_only_directory(
    make_destination: MakeDestination, tmp_path: Path
):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions (root)")
        ok, reason = make_destination(FULL, path=str(locked / "{stream}.jsonl")).check_connection()
        assert ok is False
        assert reason is not None and str(locked) in reason and "not writable" in reason
    finally:
        locked.chmod(0o700)


def test_check_connection_reports_a_path_under_a_regular_file(
    make_destination: MakeDestination, tmp_path: Path
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    destination = make_destination(FULL, path=str(blocker / "sub" / "{stream}.jsonl"))

    # Whatever check_connection says, writing there cannot work.
    with pytest.raises(OSError):
        destination.begin(None)
    destination.finalize(False)

    ok, reason = destination.check_connection()
    assert ok is False
    assert reason is not None and str(blocker) in reason


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("out/{steam}.jsonl", "unknown placeholder {steam}; the placeholders are {pipeline}, "),
        ("out/{}.jsonl", "unknown placeholder {}"),
        ("out/{0}.jsonl", "unknown placeholder {0}"),
        ("out/{stream.upper}.jsonl", "unknown placeholder {stream.upper}"),
        ("out/{stream.jsonl", "expected '}' before end of string"),
        ("out/stream}.jsonl", "Single '}' encountered"),
        ("out/{stream}/", "names a directory"),
    ],
)
def test_a_bad_path_is_refused_by_bizon_check(path: str, fragment: str, cli, tmp_path: Path):
    config = tmp_path / "bad_path.yml"
    config.write_text(
        "name: p\nsource: {name: paged, stream: users, base_url: 'http://127.0.0.1:9'}\n"
        f"destination: {{name: file, config: {{path: '{path}'}}}}\n"
    )
    for command in ("check", "run"):
        code, out, err = cli(command, config)
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1 and err.startswith(f"error: {config}: ")
        assert "destination.config.path: " in err and fragment in err
    assert not (tmp_path / "out").exists()


def test_literal_braces_and_every_placeholder_are_accepted(make_destination, tmp_path: Path):
    destination = make_destination(
        FULL, path=str(tmp_path / "{{x}}" / "{pipeline}-{source}-{stream}")
    )
    run(destination, records(0, 1))
    assert ids(tmp_path / "{x}" / "pipe-src-users") == ["0"]


def test_a_path_that_is_a_directory_fails_clearly_and_leaves_nothing(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    target.mkdir(parents=True)
    destination = make_destination(FULL)
    ok, reason = destination.check_connection()
    assert ok is False and reason is not None
    assert f"{target} is a directory" in reason
    with pytest.raises(DestinationError, match=r"users\.jsonl is a directory; give the path of a"):
        destination.begin(None)
    destination.finalize(False)
    assert sorted(p.name for p in target.parent.iterdir()) == ["users.jsonl"]
    assert list(target.iterdir()) == []


_HOLDER = """
import sys
from datetime import UTC, datetime
from bizon_core.destination.destination import WriteContext
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord

cls = load_connector_class(get_connector(ConnectorKind.DESTINATION, "file"))
config = cls.get_config_class().model_validate({"path": sys.argv[1]})
context = WriteContext("other_pipeline", "src", "users", SourceSyncModes.FULL_REFRESH,
                       "holder-run", datetime.now(UTC))
destination = cls(config, context)
destination.begin(None)
destination.write([SourceRecord(id=f"a{i}", data={"i": i}) for i in range(5)])
print("BEGUN", flush=True)
sys.stdin.readline()  # the test says when to go on
destination.write([SourceRecord(id=f"a{i}", data={"i": i}) for i in range(5, 10)])
destination.commit()
destination.finalize(True)
print("COMMITTED", flush=True)
"""


def _start_holder(target: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "BEGUN\n"
    return holder


def test_a_second_load_into_the_same_path_is_refused_while_another_process_loads(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    holder = _start_holder(target)
    try:
        second = make_destination(FULL, run_id="second-run")
        with pytest.raises(
            DestinationError,
            match=rf"another load into {target} is running \(process {holder.pid}, run "
            r"holder-run\); run again when it has finished",
        ):
            second.begin(None)
        second.finalize(False)
        # A second destination of this very process is refused too.
        third = make_destination(FULL, run_id="third-run")
        with pytest.raises(DestinationError, match="another load into"):
            third.begin(None)
        third.finalize(False)

        out, _ = holder.communicate("go\n", timeout=30)
    finally:
        holder.kill()
    assert holder.returncode == 0 and out == "COMMITTED\n"
    assert ids(target) == [f"a{i}" for i in range(10)]  # exactly the holder's records
    assert not partial_of(target).exists() and not journal_of(target).exists()

    # Once that load is finished, the path is free again.
    run(make_destination(FULL, run_id="later-run"), records(0, 2))
    assert ids(target) == ["0", "1"]


def test_the_lock_of_a_killed_load_is_released_by_its_death(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    holder = _start_holder(target)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL

    run(make_destination(FULL, run_id="after-the-kill"), records(0, 3))
    assert ids(target) == ["0", "1", "2"]


def test_two_loads_in_one_process_one_refused_the_other_committed_whole(
    make_destination: MakeDestination, tmp_path: Path
):
    target = tmp_path / "out" / "users.jsonl"
    first = make_destination(INCREMENTAL, run_id="first-run")
    second = make_destination(INCREMENTAL, run_id="second-run")
    first.begin(None)
    first.write(records(0, 3))
    with pytest.raises(DestinationError, match="another load into"):
        second.begin(None)
    first.write(records(3, 5))
    second.finalize(False)  # the refused load's cleanup leaves the other one alone
    first.commit()
    first.finalize(True)
    assert ids(target) == [str(i) for i in range(5)]
