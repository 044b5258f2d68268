"""Runs through the `bizon` command: what a user sees, and what a rerun finds."""

from __future__ import annotations

from pathlib import Path

import orjson


def read_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_a_rerun_after_a_pagination_loop_writes_no_page_twice(
    cli, server, write_pipeline, tmp_path
):
    output = tmp_path / "users.jsonl"
    destination = {"name": "file", "config": {"path": str(output), "flush_every": 5}}
    source = {"base_url": server.url, "page_size": 5}
    looping = write_pipeline({**source, "loop_on_page": 4}, destination)
    code, _, err = cli("run", looping)
    assert code == 1
    assert "page 4 returned next_pagination" in err and "pagination loops" in err

    # The API is fixed: the rerun resumes after the last page written before the loop.
    code, out, err = cli("run", write_pipeline(source, destination))
    assert code == 0, err
    assert "resumed at record 15" in out
    assert read_ids(output) == [str(i) for i in range(1, 26)]


def test_the_run_summary_shows_the_highest_cursor_and_this_attempts_records(
    cli, server, api, write_pipeline, tmp_path
):
    output = tmp_path / "users.jsonl"
    destination = {"name": "file", "config": {"path": str(output), "flush_every": 5}}
    source = {
        "base_url": server.url,
        "page_size": 5,
        "sync_mode": "incremental",
        "cursor_field": "updated_at",
    }
    code, _, err = cli("run", write_pipeline({**source, "fail_on_page": 4}, destination))
    assert code == 1 and "boom on page 4" in err

    code, out, err = cli("run", write_pipeline(source, destination))
    assert code == 0, err
    highest = max(r["updated_at"] for r in api.records("users"))  # one offset: text order works
    assert "25 records in 5 pages" in out
    assert "resumed at record 15 (10 records in this attempt)" in out
    assert f"max cursor {highest}" in out
