"""Two runs of one stream started together: one waits or refuses clearly, the rows are exact,
and a run alone afterwards succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bizon_core.testing.chaos import TrialConfig, run_concurrency
from bizon_core.testing.chaos.concurrency import VARIANTS
from bizon_core.testing.chaos.targets import DESTINATIONS

#: The overlap is made sure by holding page requests, not by the size of the sync.
RECORDS = 60_000


def config(destination: str, path: str, seed: str) -> TrialConfig:
    trial_seed = f"{seed}:{destination}:{path}:overlap"
    return TrialConfig(destination, path, "full_refresh", RECORDS, seed=trial_seed, timeout=240.0)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("destination", DESTINATIONS)
def test_two_cli_runs_together(
    destination: str, variant: str, tmp_path: Path, request: pytest.FixtureRequest
):
    postgres = request.getfixturevalue("postgres") if destination == "postgres" else None
    seed = request.getfixturevalue("seed")
    result = run_concurrency(config(destination, "cli", seed), variant, tmp_path, postgres)
    assert result.ok, f"{result.outcome}: {result.failures}"
    assert sorted(result.exit_codes) in (["0", "0"], ["0", "1"]), result.outcome


def test_two_dagster_materializations_together(tmp_path: Path, seed: str):
    result = run_concurrency(config("file", "dagster", seed), "same_state", tmp_path)
    assert result.ok, f"{result.outcome}: {result.failures}"
