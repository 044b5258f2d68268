"""Daily partitions: a week backfilled in one run, each partition its own materialization,
a partition reloaded replaces exactly its rows, and its checkpoints are its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from bizon_core.config import load_pipeline
from bizon_core.errors import ConfigError
from bizon_core.testing import Fault
from bizon_dagster import bizon_assets, pipeline_definitions

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "connectors/sources/dummy/config/dummy_daily.example.yml"
DAGSTER = str(Path(sys.executable).parent / "dagster")
CREATURES = dg.AssetKey(["dummy_daily", "dummy", "creatures"])
PLANTS = dg.AssetKey(["dummy_daily", "dummy", "plants"])
WEEK = [f"2026-01-0{day}" for day in range(1, 8)]


def dummy_days(stream: str) -> Counter:
    sys.path.insert(0, str(ROOT / "connectors/sources/dummy/src"))
    try:
        from fake_api import DATA
    finally:
        sys.path.pop(0)
    return Counter(datetime.fromisoformat(r["updated_at"]).date().isoformat() for r in DATA[stream])


@pytest.fixture
def daily(tmp_path) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["destination"]["config"]["path"] = str(tmp_path / "daily.duckdb")
    path = tmp_path / "pipelines" / "daily.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config))
    return path


def rows_by_partition(database: Path, table: str) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as db:
        return dict(
            db.execute(
                f'SELECT "_bizon_partition", count(*) FROM main.{table} GROUP BY 1'
            ).fetchall()
        )


def test_a_week_is_backfilled_in_one_run_from_dagster_asset_materialize(daily, home, tmp_path):
    done = subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "bizon_dagster.definitions",
            "--select",
            f"{CREATURES.to_user_string()},{PLANTS.to_user_string()}",
            "--partition-range",
            f"{WEEK[0]}...{WEEK[-1]}",
        ],
        env={**os.environ, "BIZON_PIPELINES_DIR": str(daily.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 1
        for key, stream in ((CREATURES, "creatures"), (PLANTS, "plants")):
            records = instance.fetch_materializations(key, limit=100).records
            by_partition = {
                r.partition_key: r.asset_materialization.metadata["bizon/records"].value
                for r in records
            }
            expected = dummy_days(stream)
            assert by_partition == {day: expected.get(day, 0) for day in WEEK}
            rows = {
                r.partition_key: r.asset_materialization.metadata["dagster/row_count"].value
                for r in records
            }
            assert rows == by_partition  # the partition's rows, not the table's
    assert rows_by_partition(tmp_path / "daily.duckdb", "creatures") == dict(
        dummy_days("creatures")
    )


def test_reloading_a_partition_replaces_exactly_its_rows(daily, instance, tmp_path):
    assets = bizon_assets(daily)
    for day in WEEK[:3]:
        assert dg.materialize([assets], instance=instance, partition_key=day).success
    database = tmp_path / "daily.duckdb"
    before = rows_by_partition(database, "plants")
    with duckdb.connect(str(database)) as db:
        loaded_at = db.execute(
            "SELECT max(_bizon_loaded_at) FROM main.plants WHERE _bizon_partition = '2026-01-02'"
        ).fetchone()
    assert dg.materialize([assets], instance=instance, partition_key=WEEK[0]).success
    assert rows_by_partition(database, "plants") == before == dict(dummy_days("plants"))
    with duckdb.connect(str(database)) as db:
        after = db.execute(
            "SELECT max(_bizon_loaded_at) FROM main.plants WHERE _bizon_partition = '2026-01-02'"
        ).fetchone()
    assert after == loaded_at  # the other partitions' rows were not touched


def test_a_source_that_cannot_filter_by_time_is_filtered_here_with_a_warning(daily, instance):
    result = dg.materialize([bizon_assets(daily)], instance=instance, partition_key=WEEK[1])
    warnings = [
        e.message
        for e in instance.all_logs(result.run_id)
        if "cannot filter by time" in (e.user_message or "")
    ]
    assert warnings


def test_a_failed_partition_resumes_from_its_own_checkpoint(
    make_pipeline, instance, server, tmp_path
):
    pipeline = make_pipeline(
        partitions={"type": "daily", "start": "2026-01-01"},
        source={"sync_mode": "full_refresh", "page_size": 5},
        destination={
            "name": "duckdb",
            "config": {"path": str(tmp_path / "p.duckdb"), "batch_size": 5},
        },
    )
    assets = bizon_assets(pipeline)
    users = dg.AssetKey(["paged", "users"])
    server.inject(Fault(status=500, path="/cursor/users", nth=3))
    failed = dg.materialize(
        [assets],
        instance=instance,
        partition_key="2026-01-01",
        selection=[users],
        raise_on_error=False,
    )
    assert not failed.success
    assert dg.materialize(
        [assets], instance=instance, partition_key="2026-01-02", selection=[users]
    ).success
    resumed = dg.materialize(
        [assets], instance=instance, partition_key="2026-01-01", selection=[users]
    )
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=users, asset_partitions=["2026-01-01"]), limit=1
    ).records
    assert record.asset_materialization.metadata["bizon/resumed_after_records"].value == 10
    assert resumed.success


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"destination": {"name": "file", "config": {}}},
            r"partitions: destination 'file' cannot replace one partition's rows",
        ),
        ({"source_cursor": None}, r"partitions: stream 'creatures' has no cursor_field"),
    ],
)
def test_a_pipeline_that_cannot_be_partitioned_is_one_line(daily, change, message):
    config = yaml.safe_load(daily.read_text())
    if "destination" in change:
        config["destination"] = change["destination"]
    else:
        del config["source"]["cursor_field"]
    daily.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        load_pipeline(daily)


def test_a_scheduled_tick_reloads_the_latest_partitions_with_the_lookback(
    daily, instance, tmp_path
):
    config = yaml.safe_load(daily.read_text())
    config["partitions"]["lookback"] = 2
    config["schedule"] = {"cron": "0 1 * * *"}
    daily.write_text(yaml.safe_dump(config))
    defs = pipeline_definitions(daily)
    schedule = defs.resolve_schedule_def("bizon_dummy_daily_schedule")
    tick = datetime(2026, 1, 5, 1, tzinfo=UTC)
    [request] = schedule.evaluate_tick(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    ).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-01-02"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-01-04"
    job = defs.resolve_job_def("bizon_dummy_daily_job")
    assert job.execute_in_process(instance=instance, tags=request.tags).success
    loaded = instance.fetch_materializations(PLANTS, limit=10).records
    assert sorted(r.partition_key for r in loaded) == ["2026-01-02", "2026-01-03", "2026-01-04"]


def test_at_the_shipped_defaults_a_partition_s_step_retry_resumes_its_pages(
    make_pipeline, instance, tmp_path
):
    # Every setting at its default (the step retry waits its 30 s, jittered); the source
    # fails on page 4 once, and the retry continues that partition after its 15 records.
    pipeline = make_pipeline(
        partitions={"type": "daily", "start": "2026-01-01"},
        source={"streams": ["users"], "page_size": 5, "fail_on_page": 4, "http": {}},
        destination={"name": "duckdb", "config": {"path": str(tmp_path / "p.duckdb")}},
        retries={},
    )
    users = dg.AssetKey(["paged", "users"])
    assert dg.materialize(
        [bizon_assets(pipeline)], instance=instance, partition_key="2026-01-01"
    ).success
    [record] = instance.fetch_materializations(users, limit=1).records
    assert record.partition_key == "2026-01-01"
    assert record.asset_materialization.metadata["bizon/resumed_after_records"].value == 15
    assert rows_by_partition(tmp_path / "p.duckdb", "users") == {"2026-01-01": 25}
