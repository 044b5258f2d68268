"""Two runs of one stream started together: one waits or refuses clearly, the result is exact.

Variants:
- `same_state`: the same state (CLI: one state file; Dagster: one instance), so the
  stream's own guard (lock file, concurrency slot) must keep the runs apart;
- `two_states` (CLI): two state files, so two loads into one destination target, which
  the destination's own guard must keep apart (table lock, file lock).

Page requests are held until one of the runs ends or says it was refused (at most
`HOLD_SECONDS`), so the two runs really overlap. Then a third run, alone, must succeed:
the overlap leaves nothing behind that blocks the stream.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bizon_core.testing.chaos.paths import CliPath
from bizon_core.testing.chaos.process import Outcome, SyncProcess
from bizon_core.testing.chaos.trial import Trial, TrialConfig, compare
from bizon_core.testing.postgres import PostgresServer

VARIANTS = ("same_state", "two_states")
#: Longest hold of the page requests while the second run starts: well under the
#: session's default read timeout (30 s), so the hold itself never fails a run.
HOLD_SECONDS = 10.0
#: Lines that say a run was kept out (the gate opens at once then).
REFUSALS = ("already being synced", "another load")


@dataclass
class ConcurrencyResult:
    """What two overlapping runs and the run after them did."""

    destination: str
    path: str
    variant: str
    seed: str
    exit_codes: list[str] = field(default_factory=list)
    #: How the two ended: "one refused: <line>", "both succeeded", ...
    outcome: str = ""
    lost: int = 0
    duplicated: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class Overlap(Trial):
    """Runs two syncs of one stream together, then one alone, and checks the rows."""

    def __init__(
        self,
        config: TrialConfig,
        variant: str,
        workdir: Path,
        postgres: PostgresServer | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}, expected one of {VARIANTS}")
        if variant == "two_states" and config.path != "cli":
            raise ValueError("two_states is a CLI variant: Dagster keeps one state per instance")
        super().__init__(config, workdir, postgres)
        self.variant = variant
        self.overlap = ConcurrencyResult(config.destination, config.path, variant, config.seed)

    def run_overlap(self) -> ConcurrencyResult:
        """Run the scenario (see the module docstring)."""
        result = self.overlap
        with self.server:
            self.target.prepare()
            try:
                self._setup()
                # A new Dagster instance set up by two processes at once breaks its schema
                # (two alembic heads): the instance exists before the runs, as in a deployment.
                self._snapshot()
                outcomes = self._together()
                result.exit_codes = [o.label for o in outcomes]
                self._judge(outcomes)
                alone = self._sync(None)
                if alone.exit_code != 0:
                    result.failures.append(
                        f"a run alone after the overlap failed ({alone.label}): "
                        f"{alone.refused or alone.last_error()}"
                    )
                expected = self._expected_leg(0, Counter())
                lost, duplicated, stale = compare(expected, self.target.rows())
                result.lost, result.duplicated = lost, duplicated
                if lost or duplicated or stale:
                    result.failures.append(
                        f"{lost} rows lost, {duplicated} duplicated, {stale} of a wrong version"
                    )
            except Exception as exc:
                result.failures.append(f"harness error: {type(exc).__name__}: {exc}")
            finally:
                self.target.drop()
        return result

    def _together(self) -> list[Outcome]:
        gate = threading.Event()
        self.server.on_page = lambda page: gate.wait(HOLD_SECONDS)

        def watch(line: str) -> None:
            if any(r in line for r in REFUSALS):
                gate.set()

        paths = [self.path, self.path]
        if self.variant == "two_states":
            paths[1] = CliPath(self.workdir, self.pipeline, self.key, state="other/state.db")
        processes = [
            SyncProcess(p.argv(), env=self.env, cwd=self.workdir, on_line=watch) for p in paths
        ]
        try:
            while not gate.is_set() and all(p.process.poll() is None for p in processes):
                gate.wait(0.05)
            gate.set()
            return [p.wait(self.config.timeout) for p in processes]
        finally:
            self.server.on_page = None

    def _judge(self, outcomes: list[Outcome]) -> None:
        result = self.overlap
        succeeded = [o for o in outcomes if o.exit_code == 0]
        refusals = [line for o in outcomes if (line := _refusal(o))]
        if len(succeeded) == 2:
            result.outcome = (
                f"both succeeded, one after a refusal: {refusals[0]}"
                if refusals
                else "both succeeded (one waited)"
            )
            return
        if not succeeded:
            result.outcome = "neither succeeded"
            result.failures.append(
                "neither run succeeded: " + " / ".join(o.last_error() for o in outcomes)
            )
            return
        loser = next(o for o in outcomes if o.exit_code != 0)
        line = loser.last_error()
        result.outcome = f"one refused ({loser.label}): {line}"
        if loser.timed_out:
            result.failures.append(f"the second run was still going after the timeout: {line}")
        elif self.config.path == "cli":
            lines = [x for x in loser.stderr.splitlines() if x.strip()]
            if loser.exit_code != 1 or len(lines) != 1 or "Traceback" in loser.stderr:
                result.failures.append(
                    f"the refused run should exit 1 with one line, got {loser.label} and "
                    f"{len(lines)} lines: {line}"
                )


def _refusal(outcome: Outcome) -> str | None:
    """The line of the run's output that says it was kept out, if any."""
    for line in outcome.stderr.splitlines():
        if any(r in line for r in REFUSALS):
            return line.strip()[-200:]
    return None


def run_concurrency(
    config: TrialConfig, variant: str, workdir: Path, postgres: PostgresServer | None = None
) -> ConcurrencyResult:
    """Two runs of `config`'s stream together, then one alone (see the module docstring)."""
    return Overlap(config, variant, workdir, postgres).run_overlap()
