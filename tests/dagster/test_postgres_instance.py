"""The Dagster guide's PostgreSQL `dagster.yaml`, as written, on the suite's throw-away server."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from bizon_core.testing.postgres import PostgresServer
from bizon_dagster import bizon_assets

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "dagster.md"
USERS = dg.AssetKey(["paged", "users"])


def readme_instance_config() -> str:
    """The yaml block of docs/dagster.md that starts with `# $DAGSTER_HOME/dagster.yaml`."""
    blocks = re.findall(
        r"```yaml\n(# \$DAGSTER_HOME/dagster\.yaml\n.*?)```", GUIDE.read_text(), re.S
    )
    assert len(blocks) == 1
    return blocks[0]


@pytest.fixture
def postgres_home(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """DAGSTER_HOME holding the guide's dagster.yaml, its variables set for the server."""
    with psycopg.connect(autocommit=True, **postgres.admin) as admin:
        admin.execute("DROP DATABASE IF EXISTS dagster WITH (FORCE)")
        admin.execute(f'CREATE DATABASE dagster OWNER "{postgres.user}"')
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(readme_instance_config())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres.port))
    monkeypatch.setenv("DAGSTER_PG_USER", postgres.user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    return home


def metadata(instance: dg.DagsterInstance) -> dict:
    event = instance.get_latest_materialization_event(USERS)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_readme_postgres_instance_keeps_the_cursor(postgres_home, make_pipeline, api):
    assets = bizon_assets(make_pipeline(source={"streams": ["users"]}))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert dg.materialize([assets], instance=instance).success
        first = metadata(instance)
    api.upsert("users", {**api.get("users", 4), "name": "changed"})
    with dg.DagsterInstance.get() as instance:  # a new process would open it the same way
        assert dg.materialize([assets], instance=instance).success
        second = metadata(instance)
    assert first["bizon/fetched_after"] == "(full fetch)"
    assert second["bizon/fetched_after"] == first["bizon/last_run"]
    assert second["bizon/records"] == 1
