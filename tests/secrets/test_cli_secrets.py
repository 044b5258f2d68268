"""The secrets sweep through the CLI, at the shipped defaults (HTTP retries on).

Each run gets retryable faults first (429 with `Retry-After: 0`, 503), so the session's
retry warnings are logged with the URL, whose path holds the API key. Then stdout,
stderr, everything under `.bizon/` (state file, DuckDB file) and the PostgreSQL tables
are searched for every secret value.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
from sweep import (
    API_KEY,
    PAGE_SIZE,
    RECORDS,
    WRONG_CLIENT_SECRET,
    hits,
    pipeline_config,
    postgres_destination,
    secret_values,
    tree_bytes,
)

from bizon_core.testing import Fault

DUCKDB = {"name": "duckdb", "config": {"path": ".bizon/sweep.duckdb"}}


def retried_then_failing(path: str) -> list[Fault]:
    """Page 1 answered 429 then retried, page 2 503 then retried, page 4 a 400 for good."""
    return [
        Fault(status=429, headers={"Retry-After": "0"}, path=path),
        Fault(status=503, headers={"Retry-After": "0"}, path=path, nth=2),
        Fault(status=400, path=path, nth=3),
    ]


def requests_to(api, prefix: str) -> list:
    return [r for r in api.requests if r.path.startswith(prefix)]


def test_a_failed_run_stores_no_secret_and_its_resume_gets_the_exact_next_url(
    cli, api, write_config
):
    path = write_config(pipeline_config(api, DUCKDB))
    api.inject(*retried_then_failing("/next_url/"))
    failed = cli("run", path)
    assert failed[0] == 1
    state = Path(".bizon/state.db").read_bytes()
    # The checkpoint holds the next URL with a reference in place of the key, readable.
    assert b"/next_url/${secret:env:KEYED_API_KEY}?" in state
    assert f"after={3 * PAGE_SIZE}".encode() in state

    before = len(requests_to(api, "/next_url/"))
    resumed = cli("run", path)
    assert resumed[0] == 0, resumed
    first = requests_to(api, "/next_url/")[before]
    assert first.path == f"/next_url/{API_KEY}"
    assert first.query == {"limit": str(PAGE_SIZE), "key": API_KEY, "after": str(3 * PAGE_SIZE)}
    with duckdb.connect(".bizon/sweep.duckdb", read_only=True) as db:
        count, distinct = db.execute('SELECT count(*), count(DISTINCT id) FROM "items"').fetchone()
    assert (count, distinct) == (RECORDS, RECORDS)

    outputs = [*failed[1:], *resumed[1:]]
    assert "***" in failed[2]  # the key was in the error's URL: masked, not dropped
    assert hits(secret_values(api), [*outputs, *tree_bytes(Path(".bizon"))]) == []


def test_a_page_token_is_state_not_a_secret(cli, api, write_config):
    path = write_config(pipeline_config(api, DUCKDB, pagination="page_token"))
    api.inject(*retried_then_failing("/cursor/"))
    assert cli("run", path)[0] == 1
    cursors = [r for r in requests_to(api, "/cursor/") if "cursor" in r.query]
    last_token = cursors[-1].query["cursor"]  # the page that failed
    assert f'"page_token":"{last_token}"'.encode() in Path(".bizon/state.db").read_bytes()
    before = len(requests_to(api, "/cursor/"))
    code, out, err = cli("run", path)
    assert code == 0, err
    assert requests_to(api, "/cursor/")[before].query["cursor"] == last_token
    assert hits(secret_values(api), [out, err, *tree_bytes(Path(".bizon"))]) == []


def test_postgres_and_oauth_errors_name_what_failed_without_a_secret(
    cli, api, write_config, postgres, monkeypatch
):
    monkeypatch.setenv("SWEEP_PG_PASSWORD", postgres.password)
    destination = postgres_destination(postgres, "sweep_items")
    good = write_config(pipeline_config(api, destination))
    api.inject(*retried_then_failing("/next_url/")[:2])
    outputs = list(cli("run", good)[1:])
    assert "30 records" in outputs[0], outputs

    bad_client = write_config(
        pipeline_config(api, destination, name="bad_client", client_secret=WRONG_CLIENT_SECRET)
    )
    for args in (("run", bad_client), ("run", bad_client, "--debug"), ("check", bad_client)):
        code, out, err = cli(*args)
        assert code == 1
        outputs += [out, err]
        # The token endpoint is no secret: the message says where the request went.
        assert f"OAuth2 token request to {api.url}/oauth/token failed with HTTP 401" in out + err

    monkeypatch.setenv("SWEEP_PG_PASSWORD", "sweep-wrong-pg-password")
    code, out, err = cli("run", good)
    assert code == 1 and "password authentication failed" in err
    outputs += [out, err]

    with psycopg.connect(**postgres.params()) as conn:
        tables = conn.execute(
            "SELECT string_agg(t::text, '') FROM sweep_items t"
            " UNION ALL SELECT string_agg(l::text, '') FROM _bizon_loads l"
        ).fetchall()
    stored = [row[0] or "" for row in tables]
    values = secret_values(api, postgres.password, "sweep-wrong-pg-password")
    assert hits(values, [*outputs, *stored, *tree_bytes(Path(".bizon"))]) == []
