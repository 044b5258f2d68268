"""The fault modes of `FakeApiServer`: truncated bodies, permanent and seeded random faults."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from bizon_core.testing import (
    FakeApi,
    FakeApiServer,
    Fault,
    RandomFaults,
    make_records,
    transient_faults,
)

COUNT_URL = "/count/users"


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeApi({"users": make_records(30)})) as running:
        yield running


def outcome(session: requests.Session, url: str) -> str:
    """What a plain client (no retries) sees: a status, or the kind of error."""
    try:
        response = session.get(url, timeout=0.3)
        _ = response.content
    except requests.RequestException as error:
        return type(error).__name__
    return str(response.status_code)


def test_a_truncated_body_is_cut_short(server: FakeApiServer) -> None:
    server.inject(Fault("truncate"))
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            session.get(f"{server.url}/cursor/users")
        assert len(session.get(f"{server.url}/cursor/users").json()["items"]) == 30


def test_a_fault_fires_times_or_for_good(server: FakeApiServer) -> None:
    server.inject(Fault(status=500, path="/count", nth=2, times=2))
    server.inject(Fault(status=401, path="/cursor/", times=None))
    with requests.Session() as session:
        counts = [outcome(session, server.url + COUNT_URL) for _ in range(5)]
        pages = [outcome(session, f"{server.url}/cursor/users") for _ in range(5)]
    assert counts == ["200", "500", "500", "200", "200"]
    assert pages == ["401"] * 5
    assert [fault.status for _, fault in server.fired] == [500, 500] + [401] * 5
    assert [fault.status for fault in server.pending_faults] == [401]


def test_fault_times_is_validated() -> None:
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="rate"):
        RandomFaults(rate=1.5)


def random_outcomes(seed: int, n: int, **options) -> list[str]:
    with FakeApiServer(FakeApi({"users": make_records(3)})) as server:
        server.inject_random(RandomFaults(transient_faults(slow_seconds=0.6), seed=seed, **options))
        with requests.Session() as session:
            return [outcome(session, server.url + COUNT_URL) for _ in range(n)]


def test_random_faults_are_reproducible_and_about_one_in_five() -> None:
    first = random_outcomes(seed=3, n=120)
    assert random_outcomes(seed=3, n=120) == first
    assert random_outcomes(seed=4, n=30) != first[:30]
    seen = Counter(first)
    assert 0.12 <= 1 - seen["200"] / len(first) <= 0.28
    # Every kind shows: 5xx, 429, a reset, a truncated body, a slow answer past the timeout.
    assert {"500", "502", "503", "429", "ConnectionError", "ChunkedEncodingError"} <= set(seen)
    assert "ReadTimeout" in seen


def test_random_faults_keep_to_their_path_and_stop(server: FakeApiServer) -> None:
    server.inject_random(RandomFaults((Fault(status=503),), rate=1.0, path="/cursor/"))
    with requests.Session() as session:
        assert outcome(session, server.url + COUNT_URL) == "200"
        assert outcome(session, f"{server.url}/cursor/users") == "503"
        server.inject(Fault(status=418, path="/cursor/"))  # injected faults come first
        assert outcome(session, f"{server.url}/cursor/users") == "418"
        server.inject_random(None)
        assert outcome(session, f"{server.url}/cursor/users") == "200"
    assert [(path, fault.status) for path, fault in server.fired] == [
        ("/cursor/users", 503),
        ("/cursor/users", 418),
    ]
