"""Many trials: every destination, path and mode asked for, `trials` times each."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from bizon_core.testing.chaos.trial import Trial, TrialConfig, TrialResult
from bizon_core.testing.postgres import PostgresServer, temporary_postgres


def trial_configs(
    base: TrialConfig,
    destinations: list[str],
    paths: list[str],
    modes: list[str],
    trials: int,
    seed: int,
) -> list[TrialConfig]:
    """One config per trial; each trial's seed names it, so it can be run again alone."""
    return [
        replace(
            base,
            destination=destination,
            path=path,
            mode=mode,
            seed=f"{seed}:{destination}:{path}:{mode}:{index}",
        )
        for destination in destinations
        for path in paths
        for mode in modes
        for index in range(trials)
    ]


def run_trials(
    configs: list[TrialConfig],
    *,
    postgres: PostgresServer | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    """Run the trials one after the other, each in its own temporary directory."""
    results = []
    #: Clean run durations, by destination: the range of `random` kills of its next trials.
    durations: dict[str, dict[tuple[str, ...], float]] = {}
    with ExitStack() as stack:
        if postgres is None and any(c.destination == "postgres" for c in configs):
            postgres = stack.enter_context(temporary_postgres())
        for config in configs:
            with tempfile.TemporaryDirectory(prefix="bizon-chaos-") as workdir:
                known = durations.setdefault(config.destination, {})
                trial = Trial(config, Path(workdir), postgres, known)
                result = trial.run()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
