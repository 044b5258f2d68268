"""Shared fixtures: an isolated working directory, the test connectors, a local API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bizon_core.cli import main
from bizon_core.testing import FakeApi, FakeApiServer, make_records

FIXTURE_CONNECTORS = Path(__file__).parent / "fixtures" / "connectors"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own directory, with the test connectors on the search path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(FIXTURE_CONNECTORS))
    monkeypatch.delenv("BIZON_STATE_PATH", raising=False)
    return tmp_path


@pytest.fixture
def api() -> FakeApi:
    """25 users and 25 orders."""
    fake = FakeApi()
    for collection in ("users", "orders"):
        for record in make_records(25):
            fake.upsert(collection, record)
    return fake


@pytest.fixture
def server(api: FakeApi) -> Iterator[FakeApiServer]:
    with FakeApiServer(api) as running:
        yield running


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline YAML; `source` and `destination` mappings are merged into defaults."""

    def write(
        source: dict[str, Any] | None = None,
        destination: dict[str, Any] | None = None,
        name: str = "test_pipeline",
        filename: str = "pipeline.yml",
    ) -> Path:
        config = {
            "name": name,
            "source": {"name": "paged", "stream": "users", **(source or {})},
            "destination": destination
            or {"name": "file", "config": {"path": str(tmp_path / "out" / "{stream}.jsonl")}},
        }
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `bizon ARGS` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
