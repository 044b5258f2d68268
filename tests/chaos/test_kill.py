"""kill -9 trials at the shipped defaults: file, DuckDB and PostgreSQL, CLI and Dagster.

Each trial syncs the `chaos` source, SIGKILLs the process group at a chosen moment (once
or twice in a row), reruns to success, and checks: every expected row exactly once, the
rerun resumed from the killed run's checkpoint, the cursor moved only with the data.
"""

from __future__ import annotations

from typing import Any

import pytest

from bizon_core.testing.chaos import Trial, TrialConfig, failure_lines
from bizon_core.testing.chaos.targets import DESTINATIONS

#: (mode, phases, probability of two kills in a row): twice in a row mid-run, in the commit.
CLI_TRIALS = {
    "mid_run_twice": ("full_refresh", ("random", "fetch", "write"), 1.0),
    "commit": ("incremental", ("commit", "after_commit"), 0.0),
}
DAGSTER_MODES = {"file": "incremental", "duckdb": "full_refresh", "postgres": "incremental"}


def run_trial(
    destination: str, path: str, mode: str, request: pytest.FixtureRequest, **knobs: Any
) -> None:
    """Run one trial and assert it was exact; the failure names the seed that repeats it."""
    seed, records = request.getfixturevalue("seed"), request.getfixturevalue("records")
    postgres = request.getfixturevalue("postgres") if destination == "postgres" else None
    durations = request.getfixturevalue("durations").setdefault(destination, {})
    tmp_path = request.getfixturevalue("tmp_path")
    name = request.node.callspec.id
    config = TrialConfig(destination, path, mode, records, seed=f"{seed}:{name}", **knobs)
    result = Trial(config, tmp_path, postgres, durations).run()
    report = "\n".join(failure_lines([result]))
    assert result.ok, f"BIZON_CHAOS_SEED={seed}, trial seed {result.seed}:\n{report}"
    assert result.recovered and result.lost == 0 and result.duplicated == 0
    assert result.resumed == result.checkpoints
    assert sum(result.exit_codes.values()) >= 2  # a killed run and a rerun at least


@pytest.mark.parametrize("trial", list(CLI_TRIALS))
@pytest.mark.parametrize("destination", DESTINATIONS)
def test_cli_sync_killed_and_rerun_is_exact(
    destination: str, trial: str, request: pytest.FixtureRequest
):
    mode, phases, twice = CLI_TRIALS[trial]
    run_trial(destination, "cli", mode, request, phases=phases, twice=twice)


@pytest.mark.parametrize("destination", DESTINATIONS)
def test_dagster_materialization_killed_and_rerun_is_exact(
    destination: str, request: pytest.FixtureRequest
):
    run_trial(destination, "dagster", DAGSTER_MODES[destination], request, timeout=240.0)
