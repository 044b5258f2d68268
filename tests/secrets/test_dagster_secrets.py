"""The secrets sweep through Dagster: `dagster asset materialize` on an on-disk instance.

One run materializes three pipelines at the shipped defaults (HTTP retries, step
retries, the default checkpoint interval; only the delay between step attempts is 0):

- `next`: the API key in the URL path and in the next URLs, into DuckDB;
- `token`: `{"page_token": ...}` pagination, into PostgreSQL (password from `env://`);
- `bad`: a wrong OAuth client secret, failing for good (its step retries are off: each
  would fail the same way).

`next` and `token` get a 429 or 503 (retried: a warning with the URL is logged), a slow
page 2 (so a checkpoint passes the checkpoint throttle), then a 400 on page 4: the
first attempt fails, the step retry must resume exactly where it stopped. Then the
event log, run storage and compute logs under DAGSTER_HOME, the DuckDB file and the
command's output are searched for every secret.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import orjson
import psycopg
import pytest
import yaml
from sweep import (
    API_KEY,
    PAGE_SIZE,
    RECORDS,
    SECRET_ENV,
    WRONG_CLIENT_SECRET,
    hits,
    keyed_api,
    pipeline_config,
    postgres_destination,
    secret_values,
    tree_bytes,
)

from bizon_core import secrets
from bizon_core.config import load_pipeline
from bizon_core.testing import FakeApiServer, Fault
from bizon_core.testing.postgres import PostgresServer
from bizon_dagster import bizon_assets
from bizon_dagster.state import CHECKPOINT, RESUME_TAG

FIXTURE_CONNECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "connectors"
#: Step retries as shipped (3, exponential, jitter) but without the wait between attempts.
RETRIES = {"retries": {"delay_seconds": 0}}
#: Index, among the requests of one pagination style, of the page-4 request that fails.
FAILING_REQUEST = 4


def resumable_failure(path: str, first: int) -> list[Fault]:
    """Page 1 answered `first` then retried, page 2 slow, page 4 a 400."""
    return [
        Fault(status=first, headers={"Retry-After": "0"}, path=path),
        Fault(kind="delay", seconds=5.5, path=path, nth=2),
        Fault(status=400, path=path, nth=2),
    ]


@dataclass
class DagsterSweep:
    server: FakeApiServer
    postgres: PostgresServer
    root: Path
    home: Path
    output: str
    checkpoints: dict[str, list[dict[str, Any]]]
    materialized: set[str]
    failures: list[str]

    def requests(self, prefix: str) -> list:
        return [r for r in self.server.requests if r.path.startswith(prefix)]


@pytest.fixture(scope="module")
def dagster_sweep(tmp_path_factory, postgres) -> DagsterSweep:
    root = tmp_path_factory.mktemp("dagster_sweep")
    pipelines, home = root / "pipelines", root / "home"
    pipelines.mkdir()
    home.mkdir()
    with keyed_api() as server:
        configs = [
            pipeline_config(
                server,
                {"name": "duckdb", "config": {"path": str(root / "next.duckdb")}},
                name="sweep_next",
                asset_key_prefix=["next"],
                **RETRIES,
            ),
            pipeline_config(
                server,
                postgres_destination(postgres, "token_items"),
                name="sweep_token",
                pagination="page_token",
                asset_key_prefix=["token"],
                **RETRIES,
            ),
            pipeline_config(
                server,
                {"name": "file", "config": {"path": str(root / "bad.jsonl")}},
                name="sweep_bad",
                client_secret=WRONG_CLIENT_SECRET,
                asset_key_prefix=["bad"],
                # Each step retry would fail the same way: only slower to see.
                retries={"enabled": False},
            ),
        ]
        for config in configs:
            (pipelines / f"{config['name']}.yml").write_text(yaml.safe_dump(config))
        server.inject(*resumable_failure("/next_url/", 429), *resumable_failure("/cursor/", 503))
        env = {
            **os.environ,
            **SECRET_ENV,
            "SWEEP_PG_PASSWORD": postgres.password,
            "DAGSTER_HOME": str(home),
            "BIZON_PIPELINES_DIR": str(pipelines),
            "BIZON_CONNECTORS_PATH": str(FIXTURE_CONNECTORS),
        }
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster), "asset", "materialize", "--select", "*"]
        run = subprocess.run(
            [*command, "-m", "bizon_dagster.definitions"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (dagster_run,) = instance.get_runs()
        failures = [
            record.event_log_entry.dagster_event.step_failure_data.error.message
            for record in instance.get_records_for_run(
                dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            ).records
        ]
        checkpoints, materialized = {}, set()
        for prefix in ("next", "token", "bad"):
            key = dg.AssetKey([prefix, "keyed", "items"])
            observations = instance.fetch_observations(key, limit=100).records
            checkpoints[prefix] = [
                o.event_log_entry.asset_observation.metadata[CHECKPOINT].value
                for o in observations
                if CHECKPOINT in o.event_log_entry.asset_observation.metadata
            ]
            if instance.get_latest_materialization_event(key) is not None:
                materialized.add(prefix)
    return DagsterSweep(
        server, postgres, root, home, run.stdout + run.stderr, checkpoints, materialized, failures
    )


def test_a_resume_through_dagster_gets_the_exact_page_token(dagster_sweep):
    token = base64.urlsafe_b64encode(str(3 * PAGE_SIZE).encode()).decode()
    assert {"page_token": token} in [c["pagination"] for c in dagster_sweep.checkpoints["token"]]
    requests = dagster_sweep.requests("/cursor/")
    assert requests[FAILING_REQUEST].query["cursor"] == token  # the failed page
    assert requests[FAILING_REQUEST + 1].query["cursor"] == token  # the retry's first page
    assert "token" in dagster_sweep.materialized, dagster_sweep.output[-3000:]
    with psycopg.connect(**dagster_sweep.postgres.params()) as conn:
        counts = conn.execute("SELECT count(*), count(DISTINCT id) FROM token_items").fetchone()
    assert counts == (RECORDS, RECORDS)


def test_a_resume_through_dagster_gets_the_exact_next_url_the_event_log_never_shows(
    dagster_sweep,
):
    stored = [c["pagination"].get("next_url", "") for c in dagster_sweep.checkpoints["next"]]
    expected = f"/next_url/${{secret:env:KEYED_API_KEY}}?limit={PAGE_SIZE}"
    assert any(expected in url and f"after={3 * PAGE_SIZE}" in url for url in stored), stored
    resumed = dagster_sweep.requests("/next_url/")[FAILING_REQUEST + 1]
    assert resumed.path == f"/next_url/{API_KEY}"
    assert resumed.query == {"limit": str(PAGE_SIZE), "key": API_KEY, "after": str(3 * PAGE_SIZE)}
    assert "next" in dagster_sweep.materialized, dagster_sweep.output[-3000:]
    with duckdb.connect(str(dagster_sweep.root / "next.duckdb"), read_only=True) as db:
        counts = db.execute('SELECT count(*), count(DISTINCT id) FROM "items"').fetchone()
    assert counts == (RECORDS, RECORDS)


def test_a_failed_step_names_the_token_endpoint(dagster_sweep):
    endpoint = f"{dagster_sweep.server.url}/oauth/token"
    message = f"OAuth2 token request to {endpoint} failed with HTTP 401 (invalid_client)"
    assert any(message in failure for failure in dagster_sweep.failures), dagster_sweep.failures
    assert "bad" not in dagster_sweep.materialized


def test_dagster_home_and_the_outputs_hold_no_secret(dagster_sweep):
    home = tree_bytes(dagster_sweep.home)
    compute_logs = [p for p in dagster_sweep.home.rglob("*.err") if p.stat().st_size]
    assert compute_logs, "the sweep must see the steps' compute logs"
    # The retry warnings and errors quoted the URL: masked where the key was.
    assert any(b"/next_url/***" in blob for blob in home)
    values = secret_values(dagster_sweep.server, dagster_sweep.postgres.password)
    stored = [*home, (dagster_sweep.root / "next.duckdb").read_bytes(), dagster_sweep.output]
    assert hits(values, stored) == []


def test_a_checkpoint_whose_secret_is_gone_is_discarded_by_the_resume_tag(
    api, write_config, tmp_path, monkeypatch
):
    """The API key moves to another variable: the checkpoint's reference cannot be resolved,
    each attempt says so and how to go on; a run tagged `bizon/resume: false` starts over."""
    output = tmp_path / "items.jsonl"
    destination = {"name": "file", "config": {"path": str(output)}}
    config = pipeline_config(api, destination, name="tagged", **RETRIES)
    first = write_config(config)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        # Every attempt of the first run fails on page 4; a slow page 2 lets the first
        # attempt's checkpoint pass the checkpoint throttle.
        api.inject(
            Fault(kind="delay", seconds=5.5, path="/next_url/", nth=2),
            Fault(status=400, path="/next_url/", nth=2),
            *[Fault(status=400, path="/next_url/") for _ in range(3)],
        )
        assets = bizon_assets(load_pipeline(first))
        assert not dg.materialize([assets], instance=instance, raise_on_error=False).success

        monkeypatch.setenv("ROTATED_API_KEY", API_KEY)
        config["source"]["api_key"] = "env://ROTATED_API_KEY"
        monkeypatch.setattr(secrets, "_known_secrets", {})  # a new process
        assets = bizon_assets(load_pipeline(write_config(config)))
        stuck = dg.materialize([assets], instance=instance, raise_on_error=False)
        assert not stuck.success
        assert any(
            "the checkpoint refers to secret 'env:KEYED_API_KEY', which this pipeline no longer "
            "configures; start a run with the tag bizon/resume=false to discard it" in message
            for message in run_messages(instance, stuck)
        ), run_messages(instance, stuck)

        # The tagged run's first attempt fails too: its retry must not go back to the
        # discarded checkpoint (it resumes from its own, or starts over).
        api.inject(Fault(status=400, path="/next_url/", nth=4))
        tagged = dg.materialize(
            [assets], instance=instance, tags={RESUME_TAG: "false"}, raise_on_error=False
        )
        assert tagged.success, run_messages(instance, tagged)
    ids = sorted(int(orjson.loads(line)["id"]) for line in output.read_bytes().splitlines())
    assert ids == list(range(1, RECORDS + 1))


def run_messages(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """Every message of the run's event log (what the UI shows)."""
    return [entry.user_message for entry in instance.all_logs(result.run_id)]
