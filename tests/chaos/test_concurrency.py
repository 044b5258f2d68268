"""Two runs of one stream started together: one waits or refuses clearly, the rows are exact,
and a run alone afterwards succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bizon_core.testing.chaos import TrialConfig, run_concurrency
from bizon_core.testing.chaos.concurrency import VARIANTS
from bizon_core.testing.chaos.targets import DESTINATIONS


def config(destination: str, path: str, seed: str, records: int) -> TrialConfig:
    trial_seed = f"{seed}:{destination}:{path}:overlap"
    return TrialConfig(destination, path, "full_refresh", records, seed=trial_seed, timeout=240.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("destination", DESTINATIONS)
def test_two_cli_runs_together(
    destination: str, variant: str, tmp_path: Path, request: pytest.FixtureRequest
):
    postgres = request.getfixturevalue("chaos_postgres") if destination == "postgres" else None
    seed, records = request.getfixturevalue("seed"), request.getfixturevalue("records")
    result = run_concurrency(config(destination, "cli", seed, records), variant, tmp_path, postgres)
    assert result.ok, f"{result.outcome}: {result.failures}"
    assert sorted(result.exit_codes) in (["0", "0"], ["0", "1"]), result.outcome


def test_two_dagster_materializations_together(tmp_path: Path, seed: str, records: int):
    result = run_concurrency(config("file", "dagster", seed, records), "same_state", tmp_path)
    assert result.ok, f"{result.outcome}: {result.failures}"
