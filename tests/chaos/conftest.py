"""Chaos fixtures: a seed, and clean run durations (PostgreSQL: the session's server).

`BIZON_CHAOS_SEED` picks the seed (printed in every failure, so a failed trial runs again
the same: `BIZON_CHAOS_SEED=<seed> pytest tests/chaos -k <test>`).
"""

from __future__ import annotations

import os

import pytest

SEED = os.environ.get("BIZON_CHAOS_SEED", "8")
#: Enough records that every destination checkpoints at its default batch size (50,000
#: for file and PostgreSQL, 125,000 for DuckDB) before the end, so a kill has a resume point.
RECORDS = 150_000


@pytest.fixture(scope="session")
def seed() -> str:
    return SEED


@pytest.fixture(scope="session")
def records() -> int:
    return RECORDS


@pytest.fixture(scope="session")
def durations() -> dict[str, dict[tuple[str, ...], float]]:
    """Clean run durations by destination, shared by the trials: the range of random kills."""
    return {}
