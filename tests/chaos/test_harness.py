"""The harness itself: its server, its counts, and its kills really land."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import requests

from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.testing.chaos import Collection, GenerationsServer, Kill, Trial, TrialConfig
from bizon_core.testing.chaos.process import KILLED
from bizon_core.testing.chaos.targets import Target
from bizon_core.testing.chaos.trial import compare


def test_compare_counts_lost_duplicated_and_stale_rows():
    expected = Counter({(1, 0): 1, (2, 1): 1, (3, 1): 1})
    actual = Counter({(1, 0): 2, (2, 0): 1, (4, 1): 1})
    # (2,1) and (3,1) missing; (1,0) once too many; (2,0) and (4,1) are not expected at all.
    assert compare(expected, actual) == (2, 1, 2)
    assert compare(expected, expected) == (0, 0, 0)


def test_an_incremental_request_gets_only_the_later_generation():
    collection = Collection(250, page_size=100)
    with GenerationsServer(collection) as server:
        first = requests.get(f"{server.url}/records", params={"page": 0}, timeout=5).json()
        last_run = collection.generations[0].published_at.isoformat()
        collection.publish(changed=[5, 150], new=3)
        delta = requests.get(
            f"{server.url}/records", params={"page": 0, "updated_after": last_run}, timeout=5
        ).json()
        everything = [
            requests.get(f"{server.url}/records", params={"page": p}, timeout=5).json()
            for p in range(3)
        ]
    assert [r["id"] for r in first["items"]] == list(range(1, 101))
    assert first["next_page"] == 1
    assert [(r["id"], r["generation"]) for r in delta["items"]] == [
        (5, 1),
        (150, 1),
        (251, 1),
        (252, 1),
        (253, 1),
    ]
    assert delta["next_page"] is None
    assert delta["items"][0]["updated_at"] == collection.generations[1].published_at.isoformat()
    ids = [r["id"] for page in everything for r in page["items"]]
    assert ids == list(range(1, 101)) + list(range(101, 201)) + list(range(201, 254))


def test_a_write_kill_lands_inside_the_run_and_leaves_the_cursor(tmp_path: Path):
    trial = Trial(TrialConfig("file", "cli", "full_refresh", 120_000, seed="kill"), tmp_path)
    with trial.server:
        trial._setup()
        outcome = trial._sync(Kill("write", nth=60))
    assert outcome.exit_code == KILLED
    store = SqliteStateStore(tmp_path / "state.db")
    assert store.last_success(trial.key) is None
    checkpoint = store.resume_point(trial.key)
    assert checkpoint is not None and checkpoint.records == 50_000  # the first durable flush
    assert not (tmp_path / "records.jsonl").exists()


def test_rows_of_a_file_count_each_version(tmp_path: Path):
    lines = [{"id": "1", "data": {"generation": 0}}, {"id": "1", "data": {"generation": 0}}]
    (tmp_path / "records.jsonl").write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    assert Target("file", tmp_path).rows() == Counter({(1, 0): 2})
