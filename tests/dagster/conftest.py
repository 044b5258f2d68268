"""Dagster fixtures: a real instance on a temporary directory, pipelines on the fake API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from bizon_core.config import Pipeline, load_pipeline


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME shared by this process and the `dagster` processes it starts."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def make_pipeline(tmp_path: Path, server) -> Callable[..., Pipeline]:
    """A `paged` pipeline on the fake API server, writing JSON lines under tmp_path/out."""

    def make(name: str = "paged_sync", directory: Path | None = None, **top: Any) -> Pipeline:
        source = {
            "name": "paged",
            "streams": ["users", "orders"],
            "base_url": server.url,
            "sync_mode": "incremental",
            "cursor_field": "updated_at",
            "http": {"max_retries": 0},
            **top.pop("source", {}),
        }
        config = {
            "name": name,
            "source": source,
            "destination": {
                "name": "file",
                "config": {"path": str(tmp_path / "out" / "{pipeline}" / "{stream}.jsonl")},
                **top.pop("destination", {}),
            },
            "retries": {"enabled": False},
            **top,
        }
        path = (directory or tmp_path) / f"{name}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return load_pipeline(path)

    return make
