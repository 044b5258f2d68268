"""The repo's `dagster.yaml`, as `dagster dev` reads it: UI runs get run retries."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
LOCATION = "bizon_dagster.definitions:defs"
# What the UI's Materialize button sends for one asset.
MATERIALIZE = """mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } }
  }
}"""
RUNS = "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(url: str, query: str, **variables: object) -> dict:
    answer = requests.post(f"{url}/graphql", json={"query": query, "variables": variables})
    answer.raise_for_status()
    return answer.json()["data"]


def test_a_run_started_from_the_materialize_button_is_retried(tmp_path, make_pipeline):
    # A failing pipeline (nothing listens on port 9), with no step retries to wait for.
    pipelines = tmp_path / "pipelines"
    make_pipeline(
        directory=pipelines, source={"streams": ["users"], "base_url": "http://127.0.0.1:9"}
    )
    # dagster dev with DAGSTER_HOME unset reads dagster.yaml from its working directory.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "dagster.yaml", project / "dagster.yaml")
    assert yaml.safe_load((project / "dagster.yaml").read_text())["run_retries"]["enabled"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    dev = subprocess.Popen(
        [DAGSTER, "dev", "-w", str(REPO / "workspace.yaml"), "-p", str(port)],
        cwd=project,
        env={**env, "BIZON_PIPELINES_DIR": str(pipelines)},
        stdout=(tmp_path / "dev.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        first = _materialize(url)
        retried = _wait_for_retry(url, first)
        assert retried["tags"]["dagster/root_run_id"] == first
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()


def _materialize(url: str) -> str:
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ["paged", "users"]}],
        },
        "mode": "default",
    }
    deadline = time.monotonic() + 120
    while True:
        try:
            launched = graphql(url, MATERIALIZE, params=params)["launchPipelineExecution"]
            if launched["__typename"] == "LaunchRunSuccess":
                return launched["run"]["runId"]
        except requests.RequestException:
            pass  # the webserver or the code location is still starting
        assert time.monotonic() < deadline, "dagster dev did not start"
        time.sleep(1)


def _wait_for_retry(url: str, run_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for run in graphql(url, RUNS)["runsOrError"]["results"]:
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            if tags.get("dagster/parent_run_id") == run_id:
                return {**run, "tags": tags}
        time.sleep(1)
    raise AssertionError(f"run {run_id} was not retried")
