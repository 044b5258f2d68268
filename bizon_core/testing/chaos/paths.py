"""The two ways a user runs a sync, and how each keeps its state.

- `cli`: `bizon run PIPELINE --state STATE` (state in a SQLite file);
- `dagster`: `dagster asset materialize --select KEY -m bizon_dagster.definitions` with
  `BIZON_PIPELINES_DIR` and a file-based `DAGSTER_HOME` (state in the instance's event log,
  read by `tools/dagster_state.py` in its own process: this package never imports Dagster).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing.chaos.process import Outcome

PATHS = ("cli", "dagster")
BIN = Path(sys.executable).parent
DAGSTER_STATE = Path(__file__).parent / "tools" / "dagster_state.py"
#: Dagster run statuses of a run that has not ended.
UNFINISHED = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
_RESUMED = re.compile(r"resumed at record (\d+)")


@dataclass(frozen=True)
class Snapshot:
    """The state of a stream between two runs."""

    #: Identifies the committed runs, oldest first: the cursor moved when it changes.
    committed: tuple[str, ...]
    #: Records a rerun should resume after (a failed run's checkpoint), else None.
    checkpoint: int | None
    #: `bizon/resumed_after_records` of the latest materialization (Dagster only).
    resumed_after: int | None = None
    #: Runs that have not ended (Dagster only), by id: status.
    unfinished: dict[str, str] = field(default_factory=dict)


class CliPath:
    """`bizon run` with its own state file."""

    name = "cli"
    #: Lines after which the harness stops waiting: none, the CLI fails fast by itself.
    refuse_on: tuple[str, ...] = ()

    def __init__(self, workdir: Path, pipeline: Path, key: StreamKey, state: str = "state.db"):
        self.workdir = workdir
        self.pipeline = pipeline
        self.key = key
        self.state = workdir / state

    def argv(self) -> list[str]:
        bizon = BIN / "bizon"
        command = [str(bizon)] if bizon.exists() else [sys.executable, "-m", "bizon_core.cli"]
        return [*command, "run", str(self.pipeline), "--state", str(self.state)]

    def env(self) -> dict[str, str]:
        return {}

    def snapshot(self, env: dict[str, str]) -> Snapshot:
        store = SqliteStateStore(self.state)
        last = store.last_success(self.key)
        checkpoint = store.resume_point(self.key)
        return Snapshot(
            committed=(last.run_id,) if last else (),
            checkpoint=checkpoint.records if checkpoint else None,
        )

    def resumed_after(self, outcome: Outcome, after: Snapshot) -> int | None:
        """The records the successful `outcome` resumed after, from its summary line."""
        match = _RESUMED.search(outcome.stdout)
        return int(match.group(1)) if match else None


class DagsterPath:
    """`dagster asset materialize` of the stream's asset, on the trial's own instance."""

    name = "dagster"
    #: A rerun refused for a slot it will never get retries for minutes: stop at the line.
    refuse_on = ("already being synced",)

    def __init__(self, workdir: Path, pipeline: Path, key: StreamKey):
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.pipelines = pipeline.parent
        self.asset = f"{key.source}/{key.stream}"
        self.home.mkdir(exist_ok=True)
        # Telemetry off: no traffic but the sync's own, and nothing else bizon-related changes.
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    def argv(self) -> list[str]:
        dagster = BIN / "dagster"
        command = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
        select = ["asset", "materialize", "--select", self.asset]
        return [*command, *select, "-m", "bizon_dagster.definitions"]

    def env(self) -> dict[str, str]:
        return {"DAGSTER_HOME": str(self.home), "BIZON_PIPELINES_DIR": str(self.pipelines)}

    def snapshot(self, env: dict[str, str]) -> Snapshot:
        done = subprocess.run(
            [sys.executable, str(DAGSTER_STATE), self.asset],
            env={**env, **self.env()},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"reading the Dagster instance failed: {done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        materializations = report["materializations"]
        checkpoint = report["checkpoint"]
        return Snapshot(
            committed=tuple(m["run_id"] for m in materializations),
            checkpoint=checkpoint["records"] if checkpoint else None,
            resumed_after=materializations[-1]["resumed_after_records"]
            if materializations
            else None,
            unfinished={r: s for r, s in report["runs"].items() if s in UNFINISHED},
        )

    def resumed_after(self, outcome: Outcome, after: Snapshot) -> int | None:
        return after.resumed_after
