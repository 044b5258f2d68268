"""Incremental runs: cursor values compared as instants, the lookback, the highest cursor."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from bizon_core import cursor_instant, is_after, records_after
from bizon_core.config import load_pipeline
from bizon_core.errors import RecordError, SourceError
from bizon_core.source.models import SourceIncrementalState, SourceRecord
from bizon_core.sync.runner import run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey

KEY = StreamKey("test_pipeline", "paged", "users")
MOMENT = datetime(2026, 3, 10, 18, 0, 0, 250_000, tzinfo=UTC)
NEW_YORK = timezone(timedelta(hours=-5))


def read_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.db")


@pytest.mark.parametrize(
    "value",
    [
        MOMENT.isoformat(),
        MOMENT.astimezone(NEW_YORK).isoformat(),
        MOMENT.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        MOMENT.replace(tzinfo=None).isoformat(),  # naive: UTC
        MOMENT.timestamp(),  # epoch seconds
        round(MOMENT.timestamp() * 1000),  # epoch milliseconds
        MOMENT.astimezone(NEW_YORK),
    ],
    ids=["utc-offset", "minus-5h", "z", "naive", "epoch-s", "epoch-ms", "datetime"],
)
def test_a_cursor_value_is_read_as_an_instant(value):
    assert cursor_instant(value) == MOMENT


def test_a_later_record_with_a_negative_offset_is_after_although_its_text_sorts_before():
    last_run = MOMENT
    later = (last_run + timedelta(hours=3)).astimezone(NEW_YORK).isoformat()
    assert later < last_run.isoformat()  # the seed's string comparison would drop it
    assert is_after(later, last_run)
    assert not is_after((last_run - timedelta(seconds=1)).isoformat(), last_run)


def test_epoch_seconds_and_milliseconds_compare_with_last_run():
    last_run = MOMENT
    assert is_after(int(last_run.timestamp()) + 1, last_run)
    assert not is_after(int(last_run.timestamp() * 1000) - 1, last_run)
    assert is_after(int(last_run.timestamp() * 1000) + 1, last_run)


@pytest.mark.parametrize("value", ["yesterday", True, {"at": 1}])
def test_an_unreadable_cursor_value_names_the_record_and_field(value):
    state = SourceIncrementalState(last_run=MOMENT, cursor_field="updated_at")
    records = [SourceRecord(id="7", data={"updated_at": value})]
    with pytest.raises(RecordError, match=r"record 7: cursor field 'updated_at' holds .*"):
        records_after(records, state)


def test_records_after_keeps_what_it_cannot_date_and_drops_only_older_records():
    state = SourceIncrementalState(last_run=MOMENT, cursor_field="updated_at")
    records = [
        SourceRecord(id="old", data={"updated_at": MOMENT.isoformat()}),  # not strictly after
        SourceRecord(id="undated", data={}),
        SourceRecord(id="new", data={"updated_at": round(MOMENT.timestamp() * 1000) + 1}),
    ]
    assert [r.id for r in records_after(records, state)] == ["undated", "new"]
    no_field = SourceIncrementalState(last_run=MOMENT)
    assert [r.id for r in records_after(records, no_field)] == ["old", "undated", "new"]


def test_a_client_side_filter_keeps_a_later_record_in_another_offset(
    server, api, write_pipeline, store, tmp_path
):
    output = tmp_path / "out" / "users.jsonl"
    pipeline = load_pipeline(
        write_pipeline(
            {
                "base_url": server.url,
                "sync_mode": "incremental",
                "cursor_field": "updated_at",
                "client_side_filter": True,
            }
        )
    )
    first = run_stream(pipeline, "users", store)
    assert first.records == 25
    last_run = first.run.started_at
    latest = last_run + timedelta(hours=3)
    api.upsert("users", {"id": 26, "updated_at": latest.astimezone(NEW_YORK).isoformat()})
    api.upsert("users", {"id": 27, "updated_at": (last_run - timedelta(hours=1)).isoformat()})
    epoch_ms = round((last_run + timedelta(hours=1)).timestamp() * 1000)
    api.upsert("users", {"id": 28, "updated_at": epoch_ms})

    second = run_stream(pipeline, "users", store)
    assert read_ids(output)[25:] == ["26", "28"]
    assert second.max_cursor == latest.isoformat()
    assert store.last_success(KEY).state == {"max_cursor": latest.isoformat()}


def test_the_highest_cursor_of_a_full_fetch_is_recorded(server, api, write_pipeline, store):
    pipeline = load_pipeline(
        write_pipeline(
            {"base_url": server.url, "sync_mode": "incremental", "cursor_field": "updated_at"}
        )
    )
    run_stream(pipeline, "users", store)
    highest = max(cursor_instant(r["updated_at"]) for r in api.records("users"))
    assert store.last_success(KEY).state["max_cursor"] == highest.isoformat()


def test_a_run_that_finds_nothing_new_keeps_the_highest_cursor(server, api, write_pipeline, store):
    pipeline = load_pipeline(
        write_pipeline(
            {"base_url": server.url, "sync_mode": "incremental", "cursor_field": "updated_at"}
        )
    )
    run_stream(pipeline, "users", store)
    highest = store.last_success(KEY).state["max_cursor"]
    second = run_stream(pipeline, "users", store)
    assert second.records == 0
    assert store.last_success(KEY).state == {"max_cursor": highest}


def test_the_highest_cursor_of_a_resumed_run_counts_the_pages_before_the_failure(
    server, api, write_pipeline, store
):
    # Record 1, on the first page, is the latest: a resume after page 3 must not forget it.
    latest = datetime(2030, 1, 1, tzinfo=UTC)
    api.upsert("users", {"id": 1, "updated_at": latest.isoformat()})
    source = {
        "base_url": server.url,
        "sync_mode": "incremental",
        "cursor_field": "updated_at",
        "page_size": 5,
    }
    failing = load_pipeline(write_pipeline({**source, "fail_on_page": 3}))
    with pytest.raises(SourceError):
        run_stream(failing, "users", store)
    assert store.resume_point(KEY).state == {"max_cursor": latest.isoformat()}

    resumed = run_stream(load_pipeline(write_pipeline(source)), "users", store)
    assert resumed.resumed_from is not None and resumed.resumed_from.records > 0
    assert resumed.max_cursor == latest.isoformat()


def test_an_incremental_stream_without_cursor_field_warns_once(
    server, write_pipeline, store, caplog
):
    pipeline = load_pipeline(
        write_pipeline({"base_url": server.url, "sync_mode": "incremental", "page_size": 5})
    )
    with caplog.at_level(logging.WARNING):
        result = run_stream(pipeline, "users", store)
    warnings = [r for r in caplog.records if "without source.cursor_field" in r.getMessage()]
    assert len(warnings) == 1 and result.pages == 5
    assert result.max_cursor is None


def test_the_lookback_is_subtracted_from_last_run(server, api, write_pipeline, store):
    pipeline = load_pipeline(
        write_pipeline({"base_url": server.url, "sync_mode": "incremental", "lookback": "10m"})
    )
    first = run_stream(pipeline, "users", store)
    api.upsert("users", {**api.get("users", 3), "name": "changed"})
    second = run_stream(pipeline, "users", store)
    assert second.fetched_after == first.run.started_at - timedelta(minutes=10)
    sent = [r.query["updated_after"] for r in server.requests if "updated_after" in r.query]
    assert {datetime.fromisoformat(s.replace(" ", "+")) for s in sent} == {second.fetched_after}
    assert second.records == 1


@pytest.mark.parametrize("lookback", ["10 minutes", "PT10M", "-5m", 600])
def test_a_bad_lookback_is_one_line_naming_the_field(lookback, cli, write_pipeline):
    path = write_pipeline({"base_url": "http://127.0.0.1:9", "lookback": lookback})
    code, _, err = cli("check", path)
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "source.lookback: expected a duration such as 30s, 10m, 2h or 1d" in line
    assert "Traceback" not in err
