"""What the secrets sweep shares: its secrets, an OAuth API whose key is in every URL,
pipeline configs at the shipped defaults, and the search itself."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bizon_core.testing import FakeApi, FakeApiServer, make_records
from bizon_core.testing.postgres import PostgresServer

API_KEY = "sweep-api-key-7f3a9c21"
CLIENT_SECRET = "sweep-client-secret-51c2e0"
REFRESH_TOKEN = "sweep-refresh-token-88e1b4"
WRONG_CLIENT_SECRET = "sweep-wrong-secret-d40c17"
RECORDS = 30
PAGE_SIZE = 5
#: The variables the pipelines read their secrets from (`env://`).
SECRET_ENV = {
    "KEYED_API_KEY": API_KEY,
    "OAUTH_REFRESH_TOKEN": REFRESH_TOKEN,
    "WRONG_CLIENT_SECRET": WRONG_CLIENT_SECRET,
}


def keyed_api() -> FakeApiServer:
    """The API: its collection is named after the key; every request needs an OAuth token."""
    return FakeApiServer(
        FakeApi({API_KEY: make_records(RECORDS)}),
        require_oauth=True,
        client_id="sweep-client",
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
    )


def pipeline_config(
    server: FakeApiServer,
    destination: dict[str, Any],
    *,
    name: str = "sweep",
    pagination: str = "next_url",
    client_secret: str = CLIENT_SECRET,
    **top: Any,
) -> dict[str, Any]:
    """A `keyed` pipeline at the shipped defaults (HTTP retries, timeouts, checkpoints)."""
    return {
        "name": name,
        "source": {
            "name": "keyed",
            "stream": "items",
            "base_url": server.url,
            "api_key": "env://KEYED_API_KEY",
            "pagination": pagination,
            "page_size": PAGE_SIZE,
            "authentication": {
                "type": "oauth",
                "params": {
                    "token_refresh_endpoint": f"{server.url}/oauth/token",
                    "client_id": "sweep-client",
                    # Written in the file: secret because its field is declared `Secret`.
                    "client_secret": client_secret,
                    "refresh_token": "env://OAUTH_REFRESH_TOKEN",
                },
            },
        },
        "destination": destination,
        **top,
    }


def postgres_destination(server: PostgresServer, table: str) -> dict[str, Any]:
    return {
        "name": "postgres",
        "config": {
            "host": server.host,
            "port": server.port,
            "database": server.database,
            "user": server.user,
            "password": "env://SWEEP_PG_PASSWORD",
            "table": table,
        },
    }


def secret_values(server: FakeApiServer, *more: str) -> list[str]:
    """Every secret of a sweep: the configured ones and the access tokens the API issued."""
    return [*SECRET_ENV.values(), CLIENT_SECRET, *server.issued_tokens, *more]


def hits(values: Iterable[str], texts: Iterable[str | bytes]) -> list[str]:
    """The secret values found in any of `texts` (str, or bytes such as file contents)."""
    blobs = [t.encode() if isinstance(t, str) else t for t in texts]
    return [v for v in values if any(v.encode() in blob for blob in blobs)]


def tree_bytes(root: Path) -> list[bytes]:
    """The contents of every file under `root`."""
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]
