"""One kill -9 trial: sync, SIGKILL at chosen moments, rerun to success, check everything.

A trial is one or two legs. Full refresh: one leg, generation 0. Incremental: a first leg
(everything), then a new generation is published (some records changed, some new) and a
second leg fetches only those. In each leg the sync is killed once or twice in a row
(`kills.plan_kills`), then rerun until it succeeds (at most `RERUNS` times). Checked:

- the destination holds exactly the expected rows: each expected `(id, generation)` once
  (merge and full refresh: the latest version of every id; the `file` destination appends
  in incremental mode, so there each leg's records once);
- a rerun that found a failed run's checkpoint resumed from it;
- the cursor did not move on a killed run unless that run had committed its data.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bizon_core.sync.state import StreamKey
from bizon_core.testing.chaos.inject import SITE_DIR
from bizon_core.testing.chaos.kills import INSIDE, KILL_ENV, PHASES, Kill, plan_kills
from bizon_core.testing.chaos.pages import Collection, GenerationsServer, PageHook
from bizon_core.testing.chaos.paths import CliPath, DagsterPath, Snapshot
from bizon_core.testing.chaos.process import KILLED, Outcome, SyncProcess
from bizon_core.testing.chaos.targets import Rows, Target
from bizon_core.testing.postgres import PostgresServer

MODES = ("full_refresh", "incremental")
#: Reruns after the kills, at most, before a leg counts as never recovered.
RERUNS = 3
CONNECTORS_DIR = Path(__file__).resolve().parents[1] / "connectors"
SOURCE, STREAM = "chaos", "records"


@dataclass(frozen=True)
class TrialConfig:
    """What one trial syncs, and how."""

    destination: str
    path: str
    mode: str
    records: int
    seed: str
    page_size: int = 1000
    #: Incremental: share of the records given a new version, and of new ids, in generation 1.
    changed: float = 0.5
    new: float = 0.1
    #: Probability that a leg is killed twice in a row, and the phases its kills land in.
    twice: float = 0.25
    phases: tuple[str, ...] = PHASES
    #: Seconds one sync may take before the harness kills it and records a timeout.
    timeout: float = 300.0


@dataclass
class TrialResult:
    """What a trial saw; `failures` says what went wrong, one line each."""

    destination: str
    path: str
    mode: str
    seed: str
    kills: list[str] = field(default_factory=list)
    exit_codes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    #: Reruns that found a checkpoint, and those of them that resumed from it.
    checkpoints: int = 0
    resumed: int = 0
    #: Whether every leg ended with a successful rerun (else its rows are not counted).
    recovered: bool = True
    #: Killed Dagster runs still shown as not ended once a rerun succeeded. They hold
    #: nothing (the rerun took the stream); bizon marks a run failed only when it finds
    #: its processes gone while it held the stream, so one killed in Dagster's own start
    #: or end of a run stays STARTED until the run monitor or a user ends it.
    left_started: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a sync: the chaos source found, the kill injector loadable."""
    env = {k: v for k, v in os.environ.items() if k not in ("BIZON_STATE_PATH", "DAGSTER_HOME")}
    for name, directory in (("BIZON_CONNECTORS_PATH", CONNECTORS_DIR), ("PYTHONPATH", SITE_DIR)):
        env[name] = os.pathsep.join(p for p in (str(directory), env.get(name, "")) if p)
    return {**env, **extra}


def write_pipeline(path: Path, name: str, mode: str, url: str, target: Target) -> Path:
    """The pipeline YAML of the chaos source into `target`, at every other default."""
    source = {"name": SOURCE, "stream": STREAM, "sync_mode": mode, "base_url": url}
    if mode == "incremental":
        source["cursor_field"] = "updated_at"
    config = {"name": name, "source": source, "destination": target.config()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def compare(expected: Rows, actual: Rows) -> tuple[int, int, int]:
    """`(lost, duplicated, stale)`: expected rows missing, expected rows held more than once,
    rows of a version that should not be there."""
    extra = actual - expected
    duplicated = sum(n for key, n in extra.items() if key in expected)
    return sum((expected - actual).values()), duplicated, sum(extra.values()) - duplicated


class Trial:
    """Runs one `TrialConfig` in `workdir` (see the module docstring)."""

    def __init__(
        self,
        config: TrialConfig,
        workdir: Path,
        postgres: PostgresServer | None = None,
        durations: dict[tuple[str, ...], float] | None = None,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        #: Seconds a clean run took, by (path, mode, leg): the range of a `random` kill.
        self.durations = durations if durations is not None else {}
        schema = f"chaos_{random.Random(config.seed).getrandbits(40):010x}"
        self.target = Target(config.destination, workdir, postgres, schema)
        self.result = TrialResult(config.destination, config.path, config.mode, config.seed)
        self.collection = Collection(config.records, config.page_size)
        self.server = GenerationsServer(self.collection)
        self.pipeline = workdir / "pipelines" / "chaos.yml"
        self.key = StreamKey(f"chaos_{config.destination}_{config.mode}", SOURCE, STREAM)
        self.env = child_env(self.target.env())
        self.path: CliPath | DagsterPath

    def run(self) -> TrialResult:
        config = self.config
        with self.server:
            self.target.prepare()
            try:
                self._setup()
                expected = self._expected_leg(0, Counter())
                self._leg(0, expected)
                if config.mode == "incremental" and self.result.recovered:
                    self._publish()
                    self._leg(1, self._expected_leg(1, expected))
            except Exception as exc:  # the harness's own trouble: report it, with the seed
                self.result.failures.append(f"harness error: {type(exc).__name__}: {exc}")
            finally:
                self.target.drop()
        return self.result

    def _setup(self) -> None:
        """The pipeline YAML, and how to run it (on the started server)."""
        mode, url = self.config.mode, self.server.url
        write_pipeline(self.pipeline, self.key.pipeline, mode, url, self.target)
        if self.config.path == "cli":
            self.path = CliPath(self.workdir, self.pipeline, self.key)
        else:
            self.path = DagsterPath(self.workdir, self.pipeline, self.key)
        self.env.update(self.path.env())

    def _publish(self) -> None:
        n = self.config.records
        changed = self.rng.sample(range(1, n + 1), int(n * self.config.changed))
        self.collection.publish(changed, int(n * self.config.new))

    def _expected_leg(self, leg: int, before: Rows) -> Rows:
        """The rows once leg `leg` succeeded (generation `leg` is the latest published)."""
        if self.config.destination == "file" and self.config.mode == "incremental":
            fetched = self.collection.latest(since=leg)
            return before + Counter(fetched.items())
        return Counter(self.collection.latest().items())

    def _leg(self, leg: int, expected: Rows) -> None:
        pages = len(self.collection.pages(leg))
        estimate = self.durations.get((self.config.path, self.config.mode, str(leg)))
        kills = plan_kills(self.rng, pages, estimate, self.config.twice, self.config.phases)
        self.result.kills.append(" > ".join(str(k) for k in kills))
        before = self._snapshot()
        for kill in kills:
            outcome = self._sync(kill)
            if outcome.refused is not None:
                self._fail(f"run to be killed at {kill} was refused: {outcome.refused}")
                break
            after = self._snapshot()
            if outcome.exit_code not in (0, KILLED):
                self._fail(
                    f"killed run ({kill}) ended with {outcome.label}: {outcome.last_error()}"
                )
            if after.committed != before.committed:
                # The run committed before the kill landed: its data must be all there.
                self._check_rows(
                    expected, f"after a run killed at {kill} that moved the cursor", count=False
                )
            elif outcome.exit_code == 0:
                self._fail(f"run killed at {kill} exited 0 without moving the cursor")
            before = after
        if self._rerun(leg, before):
            self._check_rows(expected, f"after leg {leg + 1}")
        else:
            self.result.recovered = False

    def _rerun(self, leg: int, before: Snapshot) -> bool:
        """Rerun until a run succeeds; False if none did (the rows are then not checked)."""
        for _ in range(RERUNS):
            outcome = self._sync(None)
            if outcome.refused is not None:
                self._fail(f"rerun refused: {outcome.refused}")
                return False
            if outcome.exit_code != 0:
                self._fail(f"rerun failed ({outcome.label}): {outcome.last_error()}")
                before = self._snapshot()
                continue
            after = self._snapshot()
            resumed = self.path.resumed_after(outcome, after)
            if before.checkpoint is not None:
                self.result.checkpoints += 1
                if resumed == before.checkpoint:
                    self.result.resumed += 1
                else:
                    self._fail(
                        f"rerun did not resume after the checkpoint of {before.checkpoint} "
                        f"records (resumed after: {resumed})"
                    )
            if resumed is None:
                self.durations[(self.config.path, self.config.mode, str(leg))] = outcome.seconds
            self.result.left_started.update(after.unfinished)
            return True
        self._fail(f"no rerun succeeded in {RERUNS} attempts")
        return False

    def _sync(self, kill: Kill | None) -> Outcome:
        env = dict(self.env)
        if kill is not None and kill.phase in INSIDE:
            env[KILL_ENV] = kill.to_json()
        process = SyncProcess(
            self.path.argv(), env=env, cwd=self.workdir, refuse_on=self.path.refuse_on
        )
        timer = None
        if kill is not None and kill.phase == "random":
            timer = process.kill_after(kill.delay)
        elif kill is not None and kill.phase == "fetch":
            self.server.on_page = _kill_at_request(process, kill.nth)
        try:
            outcome = process.wait(self.config.timeout)
        finally:
            self.server.on_page = None
            if timer is not None:
                timer.cancel()
        self.result.exit_codes[outcome.label] += 1
        if outcome.timed_out:
            self._fail(f"a run took more than {self.config.timeout:.0f}s: killed")
        return outcome

    def _snapshot(self) -> Snapshot:
        return self.path.snapshot(self.env)

    def _check_rows(self, expected: Rows, when: str, count: bool = True) -> None:
        lost, duplicated, stale = compare(expected, self.target.rows())
        if count:
            self.result.lost += lost
            self.result.duplicated += duplicated
        if lost or duplicated or stale:
            self._fail(
                f"{when}: {lost} rows lost, {duplicated} duplicated, {stale} of a wrong version"
                f" (expected {sum(expected.values())})"
            )

    def _fail(self, message: str) -> None:
        self.result.failures.append(message)


def _kill_at_request(process: SyncProcess, nth: int) -> PageHook:
    """A page hook that kills `process` while its `nth` page request is in flight."""
    seen = [0]

    def hook(page: int) -> None:
        seen[0] += 1
        if seen[0] == nth:
            process.kill()

    return hook
