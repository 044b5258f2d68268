"""`RestSource` end to end: a declared connector run by `bizon run` against the local API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from bizon_core.discovery import ConnectorKind, get_connector
from bizon_core.errors import ConfigError, SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.source.pagination import (
    CursorPaginator,
    KeysetPaginator,
    LinkHeaderPaginator,
    OffsetPaginator,
    Paginator,
)
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig
from bizon_core.testing import FakeApi, FakeApiServer, Fault, make_records

TOKEN = "rest-t0ken-9911"
#: Orders per user: user 1 has none, user 2 one, ... user 7 six (21 in all).
ORDERS = [
    {**order, "parent_id": user}
    for user in range(1, 8)
    for order in make_records(user - 1, start_id=user * 100)
]


def output(stream: str) -> list[dict]:
    return [
        orjson.loads(line) for line in (Path("out") / f"{stream}.jsonl").read_bytes().splitlines()
    ]


@pytest.fixture
def shop() -> FakeApi:
    fake = FakeApi()
    fake.add("users", make_records(7))
    fake.add("orders", ORDERS)
    return fake


@pytest.fixture
def shop_server(shop):
    with FakeApiServer(shop, required_headers={"Authorization": f"Bearer {TOKEN}"}) as running:
        yield running


@pytest.fixture
def rest_pipeline(write_pipeline, shop_server):
    def write(stream: str, **source):
        return write_pipeline(
            {
                "name": "myapi_rest",
                "stream": stream,
                "base_url": shop_server.url,
                "authentication": {"type": "bearer", "params": {"token": TOKEN}},
                **source,
            }
        )

    return write


def test_discovery_lists_the_endpoints_as_streams_without_importing():
    info = get_connector(ConnectorKind.SOURCE, "myapi_rest")
    assert info.streams == ("users", "orders")
    assert info.supports_incremental
    assert info.class_name == "MyApiRestSource"


def test_full_refresh_follows_the_cursor_to_the_last_page(cli, rest_pipeline, shop_server):
    code, out, err = cli("run", rest_pipeline("users"))
    assert code == 0, err
    assert "users: 7 records in 3 pages" in out
    assert [r["id"] for r in output("users")] == [str(i) for i in range(1, 8)]
    sent = [r.query for r in shop_server.requests]
    assert sent[0] == {"limit": "3"} and set(sent[1]) == {"limit", "cursor"}


def test_incremental_sends_last_run_then_gets_only_the_changes(
    cli, rest_pipeline, shop, shop_server
):
    path = rest_pipeline("users", sync_mode="incremental")
    assert cli("run", path)[0] == 0
    first_requests = len(shop_server.requests)
    shop.upsert("users", {**shop.get("users", 5), "name": "changed"})
    code, out, err = cli("run", path)
    assert code == 0, err
    assert "users: 1 records" in out
    second = shop_server.requests[first_requests:]
    assert all("updated_after" in r.query for r in second)
    assert output("users")[-1]["data"]["name"] == "changed"


def test_incremental_without_a_parameter_filters_client_side(cli, rest_pipeline, shop):
    path = rest_pipeline("orders", sync_mode="incremental")
    assert cli("run", path)[0] == 0
    shop.upsert("orders", {**shop.get("orders", 503), "name": "changed"})
    code, out, err = cli("run", path)
    assert code == 0, err
    assert "orders: 1 records" in out
    assert output("orders")[-1]["id"] == "503"


def test_max_cursor_start_sends_the_highest_value_loaded(shop_server):
    source = _source(
        shop_server,
        Endpoint(
            path="cursor/users",
            records_path="items",
            incremental=Incremental(param="updated_after", start="max_cursor"),
        ),
        cursor_field="updated_at",
    )
    state = SourceIncrementalState(
        last_run=datetime(2030, 1, 1, tzinfo=UTC),
        state={"max_cursor": "2026-01-01T01:00:03+00:00"},
    )
    page = source.get_records_after(state)
    assert shop_server.requests[-1].query["updated_after"] == "2026-01-01T01:00:03+00:00"
    assert [r.id for r in page.records] == ["4", "5", "6", "7"]


def test_child_stream_takes_each_parent_id_and_resumes_at_the_parent_it_stopped_at(
    cli, rest_pipeline, shop_server
):
    path = rest_pipeline(
        "user_orders",
        name="rest_api",
        endpoints={
            "users": {"path": "cursor/users", "records_path": "items", "params": {"limit": 3}},
            "user_orders": {
                "path": "cursor/users/{user_id}/orders",
                "records_path": "items",
                "params": {"limit": 2},
                "parent": {"stream": "users", "fields": {"user_id": "id"}},
            },
        },
        paginator={"type": "cursor", "cursor_path": "next_cursor", "param": "cursor"},
    )
    # User 5's orders fail for good: the run stops there with what it had.
    shop_server.inject(Fault(status=404, path="/cursor/users/5/orders", times=1))
    code, _, err = cli("run", path)
    assert code == 1 and "404" in err
    assert not (Path("out") / "user_orders.jsonl").exists()  # nothing published yet

    code, out, err = cli("run", path)
    assert code == 0, err
    assert "resuming" in out + err
    rows = output("user_orders")
    assert sorted(r["id"] for r in rows) == sorted(str(o["id"]) for o in ORDERS)
    assert all(r["data"]["_users_user_id"] == r["data"]["parent_id"] for r in rows)
    # No parent was fetched again for orders already written: users 1-4 once each.
    child_paths = [r.path for r in shop_server.requests if r.path.endswith("/orders")]
    assert child_paths.count("/cursor/users/2/orders") == 1


@pytest.mark.parametrize(
    "endpoint",
    [
        Endpoint(path="link/users", paginator=LinkHeaderPaginator(), params={"per_page": 3}),
        Endpoint(path="keyset/users", records_path="data", params={"limit": 3}),
        Endpoint(path="offset/users", records_path="items", paginator=OffsetPaginator(limit=3)),
    ],
    ids=["link_header", "keyset", "offset"],
)
def test_each_paginator_reads_every_record_once(shop_server, endpoint):
    source = _source(shop_server, endpoint, paginator=KeysetPaginator())
    ids, pagination, requests_made = [], None, 0
    while pagination != {}:
        page = source.get(pagination)
        ids += [r.id for r in page.records]
        pagination, requests_made = page.next_pagination, requests_made + 1
    assert ids == [str(i) for i in range(1, 8)] and requests_made == 3


def test_a_post_endpoint_sends_params_and_cursor_in_the_json_body(shop_server):
    endpoint = Endpoint(
        path="cursor/users", method="POST", records_path="items", params={"limit": 3}
    )
    source = _source(shop_server, endpoint, paginator=CursorPaginator())
    ids, pagination = [], None
    while pagination != {}:
        page = source.get(pagination)
        ids += [r.id for r in page.records]
        pagination = page.next_pagination
    assert ids == [str(i) for i in range(1, 8)]
    sent = [orjson.loads(r.body) for r in shop_server.requests]
    assert sent[0] == {"limit": 3} and set(sent[1]) == {"limit", "cursor"}
    assert all(r.method == "POST" and not r.query for r in shop_server.requests)


def test_a_post_endpoint_is_a_query_and_retried_after_a_429(shop_server):
    shop_server.inject(Fault(status=429, headers={"Retry-After": "0"}))
    endpoint = Endpoint(path="cursor/users", method="POST", records_path="items")
    page = _source(shop_server, endpoint, paginator=CursorPaginator()).get()
    assert [r.id for r in page.records] and len(shop_server.requests) == 2


def test_the_endpoint_s_cursor_field_is_the_stream_s_default(shop_server):
    endpoint = Endpoint(path="cursor/users", incremental=Incremental(cursor_field="updated_at"))
    source = _source(shop_server, endpoint)
    assert type(source).with_default_cursor_field(source.config).cursor_field == "updated_at"
    named = source.config.model_copy(update={"cursor_field": "created_at"})
    assert type(source).with_default_cursor_field(named).cursor_field == "created_at"


def test_a_time_window_sends_both_bounds_and_keeps_only_the_window(shop_server, shop):
    incremental = Incremental(
        param="updated_after", end_param="updated_before", cursor_field="updated_at"
    )
    source = _source(
        shop_server, Endpoint(path="cursor/users", records_path="items", incremental=incremental)
    )
    start, end = (
        datetime(2026, 1, 1, 1, 0, 2, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 0, 5, tzinfo=UTC),
    )
    ids, pagination = [], None
    while pagination != {}:
        page = source.get_records_between(start, end, pagination)
        ids += [r.id for r in page.records]
        pagination = page.next_pagination
    expected = [
        r["id"]
        for r in shop.records("users")
        if start <= datetime.fromisoformat(r["updated_at"]) < end
    ]
    assert ids == [str(i) for i in expected] and 0 < len(ids) < 7
    query = shop_server.requests[0].query
    assert query["updated_before"].replace(" ", "+") == end.isoformat()
    # A second early: this API's start is exclusive, the window's is not.
    assert query["updated_after"].replace(" ", "+") == (start - timedelta(seconds=1)).isoformat()


def test_a_wrong_records_path_names_it_and_the_keys_found(shop_server):
    source = _source(shop_server, Endpoint(path="cursor/users", records_path="data"))
    with pytest.raises(SourceError, match=r"no list of records at records_path 'data'.*items"):
        source.get()
    ok, reason = source.check_connection()
    assert ok is False and "records_path 'data'" in reason


def test_a_path_naming_an_unknown_field_is_a_config_error(shop_server):
    source = _source(shop_server, Endpoint(path="cursor/{tenant}/users"))
    with pytest.raises(ConfigError, match=r"path 'cursor/\{tenant\}/users' names 'tenant'"):
        source.get()


def _source(server, endpoint: Endpoint, paginator: Paginator | None = None, **config) -> RestSource:
    class One(RestSource):
        endpoints = {"users": endpoint}

    if paginator is not None:
        One.paginator = paginator
    return One(
        RestSourceConfig(
            name="x",
            stream="users",
            base_url=server.url,
            authentication={"type": "bearer", "params": {"token": TOKEN}},
            **config,
        )
    )
