"""The sync loop against a real local API server, a real file destination and SQLite state."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from bizon_core.config import Pipeline, load_pipeline
from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import AbstractDestination, DurableUpTo, WriteContext
from bizon_core.errors import PaginationLoopError, RecordError, SourceError, StateError
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord
from bizon_core.sync.runner import run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import Checkpoint, StreamKey
from bizon_core.testing import Fault

KEY = StreamKey("test_pipeline", "paged", "users")


def read_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.db")


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return tmp_path / "out" / "users.jsonl"


@pytest.mark.parametrize("style", ["cursor", "offset", "page", "next_url"])
def test_each_pagination_style_reads_every_record_once(
    style, server, write_pipeline, store, output
):
    pipeline = load_pipeline(write_pipeline({"base_url": server.url, "pagination": style}))
    result = run_stream(pipeline, "users", store)
    assert read_ids(output) == [str(i) for i in range(1, 26)]
    assert (result.records, result.pages) == (25, 3)
    assert store.last_success(KEY).records == 25


def test_a_pagination_loop_fails_the_run(server, write_pipeline, store, output):
    pipeline = load_pipeline(write_pipeline({"base_url": server.url, "repeat_pagination": True}))
    with pytest.raises(PaginationLoopError, match="page 2 returned next_pagination"):
        run_stream(pipeline, "users", store)
    assert not output.exists()
    assert store.last_success(KEY) is None


def test_a_record_without_id_fails_the_run(server, write_pipeline, store, output):
    pipeline = load_pipeline(write_pipeline({"base_url": server.url, "id_field": "missing"}))
    with pytest.raises(RecordError, match="stream 'users': page 1: a record has no id"):
        run_stream(pipeline, "users", store)
    assert not output.exists()


def test_a_non_json_answer_fails_the_run(server, write_pipeline, store):
    server.inject(Fault(kind="non_json", path="/cursor/"))
    pipeline = load_pipeline(write_pipeline({"base_url": server.url}))
    with pytest.raises(
        SourceError, match="page 1: the API answered with something that is not JSON"
    ):
        run_stream(pipeline, "users", store)


def test_a_failed_run_keeps_the_previous_file_and_cursor(server, write_pipeline, store, output):
    run_stream(load_pipeline(write_pipeline({"base_url": server.url})), "users", store)
    before, committed = output.read_bytes(), store.last_success(KEY)
    failing = load_pipeline(write_pipeline({"base_url": server.url, "fail_on_page": 2}))
    with pytest.raises(SourceError, match="page 2: RuntimeError: boom on page 2"):
        run_stream(failing, "users", store)
    assert output.read_bytes() == before
    assert store.last_success(KEY) == committed


def test_a_failed_run_resumes_from_its_checkpoint_without_duplicates(
    server, write_pipeline, store, output, tmp_path
):
    destination = {"name": "file", "config": {"path": str(output), "flush_every": 10}}
    failing = write_pipeline({"base_url": server.url, "fail_on_page": 3}, destination)
    with pytest.raises(SourceError):
        run_stream(load_pipeline(failing), "users", store)
    checkpoint = store.resume_point(KEY)
    assert checkpoint is not None
    assert (checkpoint.records, checkpoint.pagination) == (
        20,
        {"cursor": checkpoint.pagination["cursor"]},
    )

    fixed = write_pipeline({"base_url": server.url}, destination)
    result = run_stream(load_pipeline(fixed), "users", store)
    assert result.resumed_from == checkpoint
    assert result.records == 25
    assert read_ids(output) == [str(i) for i in range(1, 26)]
    fetched = [r for r in server.requests if r.path.startswith("/cursor/users")]
    assert len(fetched) == 3  # pages 1 and 2, then only page 3 after resuming
    assert store.resume_point(KEY) is None


def test_incremental_fetches_only_what_changed(server, api, write_pipeline, store, output):
    pipeline = load_pipeline(write_pipeline({"base_url": server.url, "sync_mode": "incremental"}))
    first = run_stream(pipeline, "users", store)
    assert first.fetched_after is None and first.records == 25

    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    api.upsert("users", {"id": 26, "name": "new"})
    second = run_stream(pipeline, "users", store)
    assert second.fetched_after == first.run.started_at
    assert second.records == 2
    assert read_ids(output) == [str(i) for i in range(1, 26)] + ["3", "26"]
    assert store.last_success(KEY) == second.run


def test_incremental_without_get_records_after_falls_back_to_full_refresh(
    server, write_pipeline, store, tmp_path, monkeypatch, caplog
):
    src = tmp_path / "more" / "sources" / "plain" / "src"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "source.py").write_text(
        textwrap.dedent(
            """
            from bizon_core.source.models import SourceIteration, SourceRecord
            from bizon_core.source.source import AbstractSource
            from bizon_core.source.config import SourceConfig

            class PlainSource(AbstractSource):
                @staticmethod
                def streams():
                    return ["things"]

                @staticmethod
                def get_config_class():
                    return SourceConfig

                def get_authenticator(self):
                    return None

                def check_connection(self):
                    return True, None

                def get(self, pagination=None):
                    return SourceIteration(records=[SourceRecord(id=1, data={})])
            """
        )
    )
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(tmp_path / "more"))
    path = write_pipeline({"name": "plain", "stream": "things", "sync_mode": "incremental"})
    result = run_stream(load_pipeline(path), "things", store)
    assert result.sync_mode is SourceSyncModes.FULL_REFRESH
    assert result.records == 1
    assert "does not implement get_records_after; running a full refresh" in caplog.text


def test_two_runs_of_one_stream_never_interleave(server, write_pipeline, store, output):
    pipeline = load_pipeline(write_pipeline({"base_url": server.url}))
    with store.lock(KEY), pytest.raises(StateError, match="already being synced"):
        run_stream(pipeline, "users", store)
    assert not output.exists()


class CrashingStore(SqliteStateStore):
    """A real state store that fails once at a chosen step, as a crash there would."""

    def __init__(self, path: Path, fail_on: str):
        super().__init__(path)
        self.fail_on = fail_on

    def commit(self, key, run):
        if self.fail_on == "commit":
            self.fail_on = ""
            raise StateError("crash between the destination's commit and the cursor's")
        super().commit(key, run)


@pytest.mark.parametrize("flush_every", [10, 100_000])  # with and without mid-run checkpoints
def test_a_crash_between_destination_commit_and_cursor_commit_loses_and_duplicates_nothing(
    flush_every, server, api, write_pipeline, tmp_path, output
):
    store = CrashingStore(tmp_path / "state.db", fail_on="")
    destination = {"name": "file", "config": {"path": str(output), "flush_every": flush_every}}
    pipeline = load_pipeline(
        write_pipeline({"base_url": server.url, "sync_mode": "incremental"}, destination)
    )
    run_stream(pipeline, "users", store)
    api.upsert("users", {"id": 26, "name": "new"})
    for i in range(27, 40):
        api.upsert("users", {"id": i, "name": "new"})
    store.fail_on = "commit"
    with pytest.raises(StateError, match="crash between"):
        run_stream(pipeline, "users", store)
    assert len(read_ids(output)) == 25 + 14  # the data was committed, the cursor was not

    resumed = run_stream(pipeline, "users", store)
    assert resumed.resumed_from is not None
    assert read_ids(output) == [str(i) for i in range(1, 40)]
    assert store.last_success(KEY) == resumed.run


class LaggingDestination(AbstractDestination):
    """Writes in the background: page N is durable only once page N + 1 is written."""

    writes_in_background = True

    def __init__(self, config: DestinationConfig, context: WriteContext):
        super().__init__(config, context)
        self.writes = 0

    @staticmethod
    def get_config_class() -> type[DestinationConfig]:
        return DestinationConfig

    def write(self, records: Sequence[SourceRecord]) -> DurableUpTo | None:
        self.writes += 1
        return DurableUpTo(self.writes - 1, {"upto": self.writes - 1}) if self.writes > 1 else None

    def flush(self) -> dict[str, Any]:
        return {"upto": self.writes}

    def commit(self) -> None:
        pass


class RecordingStore(SqliteStateStore):
    def __init__(self, path: Path):
        super().__init__(path)
        self.recorded: list[Checkpoint] = []

    def checkpoint(self, key: StreamKey, checkpoint: Checkpoint) -> None:
        self.recorded.append(checkpoint)
        super().checkpoint(key, checkpoint)


def lagging(pipeline: Pipeline) -> Pipeline:
    return dataclasses.replace(pipeline, destination_class=LaggingDestination)


def test_a_checkpoint_names_the_last_page_its_marker_covers(server, write_pipeline, tmp_path):
    store = RecordingStore(tmp_path / "state.db")
    run_stream(lagging(load_pipeline(write_pipeline({"base_url": server.url}))), "users", store)
    seen = [(c.destination, c.pages, c.records, bool(c.pagination)) for c in store.recorded]
    assert seen == [
        ({"upto": 1}, 1, 10, True),
        ({"upto": 2}, 2, 20, True),
        ({"upto": 3}, 3, 25, False),  # flush(): every page written
    ]
    # The checkpoint after page 1 resumes at page 2: the one recorded when page 3 was written.
    assert store.recorded[0].pagination != store.recorded[1].pagination


def test_a_source_failure_checkpoints_the_pages_written_before_it(server, write_pipeline, tmp_path):
    store = RecordingStore(tmp_path / "state.db")
    failing = load_pipeline(write_pipeline({"base_url": server.url, "fail_on_page": 3}))
    with pytest.raises(SourceError, match="boom on page 3"):
        run_stream(lagging(failing), "users", store)
    # Page 2 was not durable when page 3 failed: the runner flushed it, then checkpointed.
    assert [(c.destination, c.records) for c in store.recorded] == [
        ({"upto": 1}, 10),
        ({"upto": 2}, 20),
    ]
    assert store.resume_point(KEY).records == 20
    assert store.last_success(KEY) is None


class SparseStore(RecordingStore):
    """A store that wants intermediate checkpoints at most once an hour."""

    checkpoint_interval = 3600.0


def test_a_throttled_store_still_gets_the_failure_and_the_pre_commit_checkpoints(
    server, write_pipeline, tmp_path, output
):
    store = SparseStore(tmp_path / "state.db")
    destination = {"name": "file", "config": {"path": str(output), "flush_every": 5}}
    failing = {"base_url": server.url, "page_size": 5, "fail_on_page": 4}
    with pytest.raises(SourceError, match="boom on page 4"):
        run_stream(load_pipeline(write_pipeline(failing, destination)), "users", store)
    # The first intermediate checkpoint, then (pages 2 and 3 throttled) the failure's.
    assert [c.records for c in store.recorded] == [5, 15]

    store.recorded.clear()
    fixed = load_pipeline(write_pipeline({"base_url": server.url, "page_size": 5}, destination))
    result = run_stream(fixed, "users", store)
    assert result.resumed_from.records == 15
    # After page 4, then the one before the commit (pagination {}), page 5's throttled.
    assert [(c.records, bool(c.pagination)) for c in store.recorded] == [(20, True), (25, False)]
    assert read_ids(output) == [str(i) for i in range(1, 26)]
