"""Where a trial's SIGKILL lands, and how a seeded random plan picks it."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

KILL_ENV = "BIZON_CHAOS_KILL"

#: Phases a kill can land in:
#: - `random`: a random delay after the start, up to the run's expected duration;
#: - `fetch`: while the request of the `nth` page is in flight (the server kills);
#: - `write`, `commit`, `after_commit`: inside the destination (see `inject`).
PHASES = ("random", "fetch", "write", "commit", "after_commit")
#: Phases armed inside the sync's processes rather than by the harness.
INSIDE = frozenset({"write", "commit", "after_commit"})


@dataclass(frozen=True)
class Kill:
    """One SIGKILL of a sync's process group."""

    phase: str
    nth: int = 1
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown kill phase {self.phase!r}, expected one of {PHASES}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Kill:
        return cls(**json.loads(text))

    def __str__(self) -> str:
        if self.phase == "random":
            return f"random@{self.delay:.2f}s"
        if self.phase == "fetch":
            return f"fetch#{self.nth}"
        if self.phase == "write":
            return f"write#{self.nth}+{self.delay * 1000:.0f}ms"
        if self.phase == "commit":
            return f"commit+{self.delay * 1000:.0f}ms"
        return self.phase


def plan_kills(
    rng: random.Random,
    pages: int,
    expected_seconds: float | None,
    twice: float = 0.25,
    phases: tuple[str, ...] = PHASES,
) -> list[Kill]:
    """One kill, or two in a row (probability `twice`), each at a random one of `phases`.

    `pages`: how many pages the run fetches; `expected_seconds`: how long a clean run took,
    None when unknown (then no `random` kill: it could land after the end).
    """
    count = 2 if rng.random() < twice else 1
    allowed = [p for p in phases if p != "random" or expected_seconds] or ["fetch"]
    kills = []
    for _ in range(count):
        phase = rng.choice(allowed)
        if phase == "random":
            kills.append(Kill(phase, delay=rng.uniform(0, expected_seconds or 0)))
        elif phase == "fetch":
            kills.append(Kill(phase, nth=rng.randint(1, pages)))
        elif phase == "write":
            kills.append(Kill(phase, nth=rng.randint(1, pages), delay=rng.uniform(0, 0.01)))
        elif phase == "commit":
            kills.append(Kill(phase, delay=rng.uniform(0, 0.2)))
        else:
            kills.append(Kill(phase))
    return kills
