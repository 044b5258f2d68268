"""The fake API server, over a real socket with `requests`."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson
import pytest
import requests

from bizon_core.testing import (
    FakeApi,
    FakeApiServer,
    Fault,
    StaticPagesServer,
    build_bench_pages,
    make_records,
)

N_RECORDS = 23
LAST_UPDATED_AT = make_records(N_RECORDS)[-1]["updated_at"]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi({"users": make_records(N_RECORDS), "empty": []})


@pytest.fixture
def server(api: FakeApi) -> Iterator[FakeApiServer]:
    with FakeApiServer(api) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


Walk = Callable[[requests.Session, str, dict[str, str]], tuple[list[int], int]]


def walk_cursor(session: requests.Session, url: str, params: dict[str, str]):
    ids, calls, cursor = [], 0, None
    while True:
        data = session.get(f"{url}/cursor/users", params={**params, "cursor": cursor}).json()
        calls += 1
        ids += [item["id"] for item in data["items"]]
        cursor = data["next_cursor"]
        if cursor is None:
            return ids, calls
        assert isinstance(cursor, str)


def walk_offset(session: requests.Session, url: str, params: dict[str, str]):
    ids, calls, offset = [], 0, 0
    while True:
        data = session.get(f"{url}/offset/users", params={**params, "offset": offset}).json()
        calls += 1
        assert data["offset"] == offset
        ids += [item["id"] for item in data["items"]]
        offset += len(data["items"])
        if not data["items"] or offset >= data["total"]:
            return ids, calls


def walk_page(session: requests.Session, url: str, params: dict[str, str]):
    ids, calls, page = [], 0, 1
    per_page = params.pop("limit")
    while True:
        query = {**params, "page": page, "per_page": per_page}
        data = session.get(f"{url}/page/users", params=query).json()
        calls += 1
        assert data["page"] == page
        ids += [item["id"] for item in data["items"]]
        if page >= data["total_pages"]:
            return ids, calls
        page += 1


def walk_next_url(session: requests.Session, url: str, params: dict[str, str]):
    ids, calls = [], 0
    data = session.get(f"{url}/next_url/users", params=params).json()
    while True:
        calls += 1
        ids += [item["id"] for item in data["items"]]
        if data["next"] is None:
            return ids, calls
        assert data["next"].startswith(f"{url}/next_url/users?")
        data = session.get(data["next"]).json()


WALKS = [walk_cursor, walk_offset, walk_page, walk_next_url]


@pytest.mark.parametrize("walk", WALKS)
def test_pagination_walks_the_collection_once(
    walk: Walk, server: FakeApiServer, session: requests.Session
) -> None:
    ids, calls = walk(session, server.url, {"limit": "5"})
    assert ids == list(range(1, N_RECORDS + 1))
    assert calls == 5  # 5+5+5+5+3, no extra empty page


@pytest.mark.parametrize("walk", WALKS)
def test_pagination_filters_on_updated_after(
    walk: Walk, api: FakeApi, server: FakeApiServer, session: requests.Session
) -> None:
    api.upsert("users", {"id": 7, "name": "changed"})
    api.upsert("users", {"id": 100})
    ids, _ = walk(session, server.url, {"limit": "1", "updated_after": LAST_UPDATED_AT})
    assert ids == [7, 100]


def test_records_are_served_in_id_order(session: requests.Session) -> None:
    api = FakeApi({"numbers": [{"id": 10}, {"id": 9}], "names": [{"id": "b"}, {"id": "a"}]})
    api.add("numbers", [{"id": 1}, {"id": 10, "replaced": True}])
    api.upsert("names", {"id": "c"})
    with FakeApiServer(api) as server:
        numbers = session.get(f"{server.url}/offset/numbers").json()["items"]
        first = session.get(f"{server.url}/cursor/names", params={"limit": 2}).json()
        cursor = {"limit": 2, "cursor": first["next_cursor"]}
        rest = session.get(f"{server.url}/cursor/names", params=cursor).json()
        after = session.get(f"{server.url}/next_url/names", params={"after": "a"}).json()
    assert numbers == [{"id": 1}, {"id": 9}, {"id": 10, "replaced": True}]
    assert [item["id"] for item in first["items"] + rest["items"]] == ["a", "b", "c"]
    assert rest["next_cursor"] is None
    assert [item["id"] for item in after["items"]] == ["b", "c"]


def test_empty_collection(server: FakeApiServer, session: requests.Session) -> None:
    url = server.url
    assert session.get(f"{url}/cursor/empty").json() == {"items": [], "next_cursor": None}
    assert session.get(f"{url}/page/empty").json() == {"items": [], "page": 1, "total_pages": 0}
    assert session.get(f"{url}/next_url/empty").json() == {"items": [], "next": None}
    assert session.get(f"{url}/offset/empty").json() == {"items": [], "total": 0, "offset": 0}


def test_count(api: FakeApi, server: FakeApiServer, session: requests.Session) -> None:
    assert session.get(f"{server.url}/count/users").json() == {"count": N_RECORDS}
    api.upsert("users", {"id": 3})
    assert api.remove("users", 4)
    assert not api.remove("users", 4)
    after = LAST_UPDATED_AT.replace("+00:00", "Z")
    count = session.get(f"{server.url}/count/users", params={"updated_after": after})
    assert count.json() == {"count": 1}
    assert session.get(f"{server.url}/count/users").json() == {"count": N_RECORDS - 1}


def test_updated_after_unencoded_plus(server: FakeApiServer, session: requests.Session) -> None:
    # A "+00:00" offset left unencoded in the query string arrives as " 00:00".
    response = session.get(f"{server.url}/count/users?updated_after=2026-01-01T01:00:10+00:00")
    assert response.json() == {"count": N_RECORDS - 10}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/cursor/users?limit=0", 400),
        ("/offset/users?offset=-1", 400),
        ("/page/users?page=x", 400),
        ("/cursor/users?cursor=%21%21", 400),
        ("/count/users?updated_after=yesterday", 400),
        ("/cursor/nope", 404),
        ("/nope/users", 404),
        ("/cursor", 404),
    ],
)
def test_bad_requests(
    path: str, status: int, server: FakeApiServer, session: requests.Session
) -> None:
    response = session.get(f"{server.url}{path}")
    assert response.status_code == status
    assert "error" in response.json()


def test_upsert_merges_and_stamps_updated_at(api: FakeApi) -> None:
    first = api.upsert("users", {"id": 2, "name": "new name"})
    second = api.upsert("users", {"id": 2, "age": 99})
    assert second["name"] == "new name" and second["age"] == 99
    assert second["email"] == "user2@example.com"
    stamped = datetime.fromisoformat(second["updated_at"])
    assert stamped.utcoffset().total_seconds() == 0
    assert len(second["updated_at"]) == len("2026-01-01T00:00:00.000000+00:00")
    assert second["updated_at"] > first["updated_at"] > LAST_UPDATED_AT
    assert api.get("users", 2) == second
    copied = api.upsert("users", {**api.get("users", 2), "age": 100})
    assert copied["updated_at"] > second["updated_at"]  # the same old value is no new value
    given = api.upsert("users", {"id": 500, "updated_at": "2020-01-01T00:00:00+00:00"})
    assert given["updated_at"] == "2020-01-01T00:00:00+00:00"
    assert api.collections["users"][-1] == given
    with pytest.raises(KeyError):
        api.get("users", 501)


def test_make_records() -> None:
    records = make_records(3, start_id=10)
    assert [r["id"] for r in records] == [10, 11, 12]
    assert records == make_records(3, start_id=10)
    assert set(records[0]) == {
        "id", "name", "email", "country", "age", "score", "active", "tags", "created_at",
        "updated_at",
    }  # fmt: skip
    assert isinstance(records[0]["score"], float) and isinstance(records[0]["active"], bool)
    assert records[0]["created_at"] == "2026-01-01T00:00:10+00:00"
    assert records[0]["updated_at"] == "2026-01-01T01:00:10+00:00"
    around_midnight = make_records(2, start_id=86399)
    assert around_midnight[0]["created_at"] == "2026-01-01T23:59:59+00:00"
    assert around_midnight[1]["created_at"] == "2026-01-02T00:00:00+00:00"


def test_keep_alive(server: FakeApiServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    try:
        for _ in range(2):
            connection.request("GET", "/count/users")
            response = connection.getresponse()
            assert response.getheader("Content-Length") == str(len(response.read()))
            sock = connection.sock
            assert sock is not None
        connection.request("GET", "/count/users")
        connection.getresponse().read()
        assert connection.sock is sock
    finally:
        connection.close()


def test_stop_drops_kept_alive_connections(api: FakeApi, session: requests.Session) -> None:
    server = FakeApiServer(api)
    server.start()
    assert session.get(f"{server.url}/count/users").ok
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{server.url}/count/users")


def test_oauth_grants(server: FakeApiServer, session: requests.Session) -> None:
    token_url = f"{server.url}/oauth/token"
    credentials = {"client_id": "client-id", "client_secret": "client-secret"}
    granted = session.post(token_url, data={"grant_type": "client_credentials", **credentials})
    assert granted.status_code == 200
    body = granted.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    refreshed = session.post(
        token_url,
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=("client-id", "client-secret"),
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != body["access_token"]
    assert server.tokens_issued == 2
    assert server.issued_tokens == [body["access_token"], refreshed.json()["access_token"]]


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "client-id"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
            401,
            "invalid_client",
        ),
        (
            {
                "grant_type": "refresh_token",
                "refresh_token": "stale",
                "client_id": "client-id",
                "client_secret": "client-secret",
            },
            400,
            "invalid_grant",
        ),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
    ],
)
def test_oauth_rejects(
    form: dict[str, str], status: int, error: str, server: FakeApiServer, session: requests.Session
) -> None:
    response = session.post(f"{server.url}/oauth/token", data=form)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert server.tokens_issued == 0


def test_oauth_custom_credentials_and_required_token(
    api: FakeApi, session: requests.Session
) -> None:
    with FakeApiServer(
        api, require_oauth=True, client_id="me", client_secret="s3cret", token_expires_in=60
    ) as server:
        count_url = f"{server.url}/count/users"
        assert session.get(count_url).status_code == 401
        form = {"grant_type": "client_credentials", "client_id": "me", "client_secret": "s3cret"}
        token = session.post(f"{server.url}/oauth/token", data=form).json()
        assert token["expires_in"] == 60
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert session.get(count_url, headers=headers).status_code == 200
        bad = session.get(count_url, headers={"Authorization": "Bearer forged"})
        assert (bad.status_code, bad.json()) == (401, {"error": "unauthorized"})
        server.expire_tokens()
        assert session.get(count_url, headers=headers).status_code == 401


def test_required_headers(api: FakeApi, session: requests.Session) -> None:
    with FakeApiServer(api, required_headers={"Authorization": "Bearer abc", "X-Team": "t"}) as s:
        url = f"{s.url}/cursor/users"
        good = {"Authorization": "Bearer abc", "X-Team": "t"}
        assert session.get(url, headers=good).status_code == 200
        for headers in ({}, {"Authorization": "Bearer abc"}, {**good, "Authorization": "x"}):
            response = session.get(url, headers=headers)
            assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
        form = {"grant_type": "client_credentials"}
        token = session.post(f"{s.url}/oauth/token", data=form, auth=("client-id", "client-secret"))
        assert token.status_code == 200  # the token endpoint takes client credentials instead


def test_status_faults_in_order(server: FakeApiServer, session: requests.Session) -> None:
    server.inject(
        Fault(status=429, headers={"Retry-After": "1"}),
        Fault(status=503, body={"message": "down"}),
    )
    url = f"{server.url}/count/users"
    throttled = session.get(url)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json() == {"error": "too many requests"}
    unavailable = session.get(url)
    assert (unavailable.status_code, unavailable.json()) == (503, {"message": "down"})
    assert session.get(url).json() == {"count": N_RECORDS}
    assert server.pending_faults == []


def test_reset_fault(server: FakeApiServer, session: requests.Session) -> None:
    url = f"{server.url}/count/users"
    assert session.get(url).ok  # the reset hits a kept-alive connection
    server.inject(Fault("reset"))
    with pytest.raises(requests.ConnectionError):
        session.get(url)
    assert session.get(url).json() == {"count": N_RECORDS}


def test_non_json_fault(server: FakeApiServer, session: requests.Session) -> None:
    server.inject(Fault("non_json"))
    response = session.get(f"{server.url}/count/users")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<html>")
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_delay_fault(server: FakeApiServer, session: requests.Session) -> None:
    server.inject(Fault("delay", seconds=0.3))
    start = time.perf_counter()
    assert session.get(f"{server.url}/count/users").json() == {"count": N_RECORDS}
    assert time.perf_counter() - start >= 0.3


def test_fault_path_prefix_and_nth(server: FakeApiServer, session: requests.Session) -> None:
    server.inject(Fault(status=500, path="/cursor/", nth=2), Fault(status=502, path="/count"))
    assert session.get(f"{server.url}/cursor/users").status_code == 200
    assert session.get(f"{server.url}/count/users").status_code == 502
    assert session.get(f"{server.url}/count/users").status_code == 200
    assert session.get(f"{server.url}/cursor/users").status_code == 500
    assert session.get(f"{server.url}/cursor/users").status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nth"):
        Fault(nth=0)


def test_request_log(server: FakeApiServer, session: requests.Session) -> None:
    session.get(f"{server.url}/offset/users", params={"limit": 2}, headers={"X-Trace": "t1"})
    session.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"})
    first, second = server.requests
    assert (first.method, first.path, first.query) == ("GET", "/offset/users", {"limit": "2"})
    assert first.headers["X-Trace"] == "t1" and first.body == b""
    assert (second.method, second.path) == ("POST", "/oauth/token")
    assert second.body == b"grant_type=client_credentials"


def test_bench_pages() -> None:
    pages = build_bench_pages(25, 10)
    decoded = [orjson.loads(page) for page in pages]
    assert [page["next_page"] for page in decoded] == [1, 2, None]
    assert [len(page["items"]) for page in decoded] == [10, 10, 5]
    assert decoded[2]["items"][-1] == make_records(1, start_id=25)[0]
    assert orjson.loads(build_bench_pages(0, 10)[0]) == {"items": [], "next_page": None}


def test_static_pages_server(session: requests.Session) -> None:
    pages = build_bench_pages(25, 10)
    with StaticPagesServer(pages) as server:
        for n, page in enumerate(pages):
            response = session.get(f"{server.url}/bench", params={"page": n})
            assert response.status_code == 200
            assert response.content == page
            assert response.headers["Content-Type"] == "application/json"
        assert session.get(f"{server.url}/bench").content == pages[0]
        for bad in ("/bench?page=3", "/bench?page=-1", "/other?page=0"):
            response = session.get(f"{server.url}{bad}")
            assert (response.status_code, response.json()) == (404, {"error": "no such page"})


def test_bench_entry_point() -> None:
    argv = ["--bench-records", "50", "--page-size", "20"]
    with subprocess.Popen(
        [sys.executable, "-m", "bizon_core.testing", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            line = process.stdout.readline()
            assert line.startswith("READY http://127.0.0.1:")
            url = line.split()[1]
            data = requests.get(f"{url}/bench", params={"page": 2}, timeout=5).json()
            assert [item["id"] for item in data["items"]] == list(range(41, 51))
            assert data["next_page"] is None
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0
        assert process.stdout.read() == ""
        assert process.stderr.read() == ""
