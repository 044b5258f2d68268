"""Fixtures of the secrets sweep: a fresh registry, the secrets in the environment, the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sweep import SECRET_ENV, keyed_api

from bizon_core import secrets
from bizon_core.testing import FakeApiServer


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no known secret, as a new process does."""
    monkeypatch.setattr(secrets, "_known_secrets", {})


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with keyed_api() as server:
        yield server


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(config: dict[str, Any], directory: Path = tmp_path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{config['name']}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write
