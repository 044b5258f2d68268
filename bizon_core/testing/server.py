"""A local HTTP server that answers like a real paginated JSON API, for tests and benchmarks.

Stdlib (`http.server`) plus orjson, on 127.0.0.1, HTTP/1.1 keep-alive::

    api = FakeApi({"users": make_records(250)})
    with FakeApiServer(api, required_headers={"Authorization": "Bearer abc"}) as server:
        server.inject(Fault(status=429, headers={"Retry-After": "1"}))
        response = requests.get(
            f"{server.url}/cursor/users",
            params={"limit": 100},
            headers={"Authorization": "Bearer abc"},
        )  # 429 first, then {"items": [...], "next_cursor": "..."} on the retry
        assert server.requests[0].path == "/cursor/users"

Endpoints, for a collection `c` (records in id order, `updated_after` keeps the records with
`updated_at` strictly later):

    GET  /cursor/c?limit=L&cursor=X&updated_after=ISO  {"items", "next_cursor": str | null}
    GET  /offset/c?offset=O&limit=L&updated_after=ISO  {"items", "total", "offset"}
    GET  /page/c?page=P&per_page=L&updated_after=ISO   {"items", "page", "total_pages"}
    GET  /next_url/c?limit=L&after=ID&updated_after=ISO {"items", "next": absolute URL | null}
    GET  /link/c?page=P&per_page=L&updated_after=ISO   [...], Link: <...page=P+1>; rel="next"
    GET  /keyset/c?limit=L&starting_after=ID&updated_after=ISO
                                                       {"object": "list", "data", "has_more"}
    GET  /count/c?updated_after=ISO                    {"count"}
    GET  /<style>/p/ID/c?...  the records of `c` whose `parent_id` is ID (404 if no p ID)
    POST any of these: the parameters are the fields of a JSON object body
    GET  /records?page_size=L&cursor=X&updated_after=ISO[&collection=users]
                                                       {"results", "next_cursor", "has_more"}
    POST /oauth/token  (form: client_credentials or refresh_token grant)
                       {"access_token", "expires_in", "token_type", "refresh_token"}

Faults: `server.inject(Fault(...))` scripts the next misbehaviours (`times=None`: for good);
`server.inject_random(RandomFaults(transient_faults(), rate=0.2, seed=1))` answers about one
request in five with a 5xx, a 429, a reset, a truncated body (reproducibly, for a seed);
`server.fired` lists the faults fired.

The benchmark server runs in its own process and serves pre-encoded pages
`GET /bench?page=N` -> `{"items": [...], "next_page": N + 1 | null}`::

    python -m bizon_core.testing --bench-records 1000000 --page-size 1000 [--port 0]

prints `READY http://127.0.0.1:PORT` and serves until SIGTERM or SIGINT. The demo API
(`demo_api()`: users, and each user's orders) that the docs' examples read is served by

    python -m bizon_core.testing --demo-api --port 8080 [--token TOKEN]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import functools
import math
import random
import secrets
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

Records = list[dict[str, Any]]
#: What an endpoint answers: the body, or the body and headers.
Answer = Any
HOST = "127.0.0.1"
DEFAULT_LIMIT = 100
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
_COUNTRIES = ["FR", "US", "DE", "JP", "BR", "IN", "NG", "CA"]
_TAGS = ["new", "vip", "churned", "trial", "beta"]
_HOURS_MINUTES = [f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)]
_SECONDS = [f"{s:02d}" for s in range(60)]


def make_records(n: int, start_id: int = 1) -> Records:
    """`n` deterministic records of 10 fields, ids `start_id` to `start_id + n - 1`.

    `created_at` is 2026-01-01 plus `id` seconds, `updated_at` one hour after it.
    """
    names, countries, tags = _FIRST_NAMES, _COUNTRIES, _TAGS
    return [
        {
            "id": i,
            "name": f"{names[i % len(names)]} {i}",
            "email": f"user{i}@example.com",
            "country": countries[i % len(countries)],
            "age": 18 + i * 7 % 60,
            "score": i * 37 % 1000 / 10,
            "active": i % 3 != 0,
            "tags": [tags[i % len(tags)], tags[i // len(tags) % len(tags)]],
            "created_at": _epoch_plus(i),
            "updated_at": _epoch_plus(i + 3600),
        }
        for i in range(start_id, start_id + n)
    ]


def _epoch_plus(seconds: int) -> str:
    """2026-01-01 UTC plus `seconds`, as `datetime.isoformat` writes it, 3 times faster."""
    day, rest = divmod(seconds, 86400)
    minute, second = divmod(rest, 60)
    return f"{_iso_day(day)}T{_HOURS_MINUTES[minute]}:{_SECONDS[second]}+00:00"


@functools.cache
def _iso_day(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).date().isoformat()


def _id_key(value: Any) -> tuple[int, Any]:
    """Sort key of a record id: numbers first, in numeric order, then anything else as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _record_key(record: dict[str, Any]) -> tuple[int, Any]:
    return _id_key(record["id"])


def _parse_time(value: str) -> datetime:
    """An ISO-8601 timestamp (trailing `Z` accepted; naive means UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FakeApi:
    """Named collections of records (each a dict with an `id`), kept in id order; thread-safe.

    Records are replaced, never changed in place, so pages already served stay as they were.
    """

    def __init__(self, collections: dict[str, Records] | None = None) -> None:
        self._lock = threading.RLock()
        self._collections: dict[str, Records] = {}
        self._last_now = datetime.min.replace(tzinfo=UTC)
        for name, records in (collections or {}).items():
            self.add(name, records)

    @property
    def collections(self) -> dict[str, Records]:
        """A snapshot: collection name -> its records in id order."""
        with self._lock:
            return {name: list(records) for name, records in self._collections.items()}

    def add(self, collection: str, records: Iterable[dict[str, Any]]) -> None:
        """Insert or replace whole records as given (creates the collection if needed)."""
        with self._lock:
            target = self._collections.setdefault(collection, [])
            for record in records:
                self._put(target, dict(record))

    def get(self, collection: str, record_id: Any) -> dict[str, Any]:
        """A copy of the record with this id; KeyError if there is none."""
        with self._lock:
            records = self._collections.get(collection, [])
            index = self._index(records, record_id)
            if index is None:
                raise KeyError(f"no record {record_id!r} in {collection!r}")
            return dict(records[index])

    def upsert(self, collection: str, record: dict[str, Any]) -> dict[str, Any]:
        """Insert a record or merge its fields into the one with the same id; returns it.

        `updated_at` is set to now (UTC, microseconds, strictly increasing) unless the record
        brings its own new value: `upsert(c, {**api.get(c, 7), "name": "x"})` bumps it.
        """
        with self._lock:
            target = self._collections.setdefault(collection, [])
            index = self._index(target, record["id"])
            current = target[index] if index is not None else {}
            merged = {**current, **record}
            if "updated_at" not in record or record["updated_at"] == current.get("updated_at"):
                merged["updated_at"] = self._now().isoformat(timespec="microseconds")
            self._put(target, merged)
            return dict(merged)

    def remove(self, collection: str, record_id: Any) -> bool:
        """Delete the record with this id; False if there was none."""
        with self._lock:
            target = self._collections.get(collection, [])
            index = self._index(target, record_id)
            if index is None:
                return False
            del target[index]
            return True

    def records(self, collection: str, updated_after: str | None = None) -> Records:
        """The records in id order, only those with `updated_at > updated_after` if given.

        Raises KeyError for an unknown collection and ValueError for a bad timestamp.
        """
        after = _parse_time(updated_after) if updated_after else None
        with self._lock:
            records = list(self._collections[collection])
        if after is None:
            return records
        return [r for r in records if _parse_time(r["updated_at"]) > after]

    def _now(self) -> datetime:
        now = datetime.now(UTC)
        if now <= self._last_now:
            now = self._last_now + timedelta(microseconds=1)
        self._last_now = now
        return now

    @staticmethod
    def _index(records: Records, record_id: Any) -> int | None:
        key = _id_key(record_id)
        index = bisect.bisect_left(records, key, key=_record_key)
        if index < len(records) and _record_key(records[index]) == key:
            return index
        return None

    def _put(self, records: Records, record: dict[str, Any]) -> None:
        index = self._index(records, record["id"])
        if index is None:
            bisect.insort(records, record, key=_record_key)
        else:
            records[index] = record


FaultKind = Literal["status", "reset", "non_json", "delay", "truncate"]
_FAULT_KINDS = get_args(FaultKind)
_HTML_BODY = (
    "<html><head><title>Maintenance</title></head><body><h1>Be right back</h1></body></html>"
)


@dataclass
class Fault:
    """A scripted misbehaviour for the next request matching `path` (a path prefix, or any).

    - `status`: answer `status` with `headers` and `body` (a dict/list as JSON, a str as
      text; default `{"error": "<reason>"}`): `Fault(status=429, headers={"Retry-After": "1"})`;
    - `reset`: close the connection without answering (the client sees a reset);
    - `non_json`: answer 200 with `Content-Type: text/html` and an HTML page (`body` if a str);
    - `delay`: wait `seconds`, then answer normally (past the client's timeout: a slow API);
    - `truncate`: answer normally but send half the body of a longer `Content-Length`, then
      close the connection (the client sees the body cut short).

    Faults are consumed in the order injected: a request is matched against the first pending
    fault whose `path` it starts with, which fires on the `nth` such request (1 = the next)
    and on the following ones, `times` in all (None: forever, a permanent fault).
    """

    kind: FaultKind = "status"
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | None = None
    seconds: float = 0.0
    path: str | None = None
    nth: int = 1
    times: int | None = 1
    _seen: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, expected one of {_FAULT_KINDS}")
        if self.nth < 1:
            raise ValueError("nth counts from 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times is at least 1, or None for a permanent fault")


def transient_faults(
    *, slow_seconds: float | None = None, retry_after: int = 1
) -> tuple[Fault, ...]:
    """What an unreliable API does now and then: 500, 502, 503, 429 with `Retry-After`,
    a reset connection, a truncated body and, given `slow_seconds`, a slow answer."""
    faults = (
        Fault(status=500),
        Fault(status=502),
        Fault(status=503),
        Fault(status=429, headers={"Retry-After": str(retry_after)}),
        Fault("reset"),
        Fault("truncate"),
    )
    return faults if slow_seconds is None else (*faults, Fault("delay", seconds=slow_seconds))


@dataclass(frozen=True)
class RandomFaults:
    """Each request matching `path` (a prefix, or any) misbehaves with probability `rate`,
    as one of `faults` (their `path`, `nth` and `times` do not apply), drawn from a
    generator seeded with `seed`: the same requests in the same order get the same faults.
    """

    faults: tuple[Fault, ...] = field(default_factory=transient_faults)
    rate: float = 0.2
    seed: int = 0
    path: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError("rate is a probability, from 0 to 1")
        if not self.faults:
            raise ValueError("faults: give at least one")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it (headers with their names as sent)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        """The body as a form (`application/x-www-form-urlencoded`)."""
        return dict(parse_qsl(self.body.decode()))


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1, served from a background thread."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__((HOST, port), handler)
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without a network.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]

    @property
    def port(self) -> int:
        """The port bound (chosen by the OS when 0 was asked)."""
        return self.server_address[1]

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, no trailing slash."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Serve from a daemon thread."""
        if self._thread is None:
            # A short poll interval makes stop() quick: shutdown() waits for the next poll.
            self._thread = threading.Thread(
                target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the listening socket and drop the open (kept-alive) connections."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout, a reset) is no error of the server: quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def _opened(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no log line per request, no Nagle delay between header and body."""

    protocol_version = "HTTP/1.1"
    server: LocalServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server._opened(self.connection)

    def finish(self) -> None:
        self.server._closed(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: nothing logged."""

    def send_answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Answer `status` with `headers` and `body`, its length counted here."""
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int_param(query: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise _ApiError(400, f"{name} must be at least {minimum}, got {value}")
    return value


def _after_id(records: Records, record_id: Any) -> Records:
    """The records (in id order) with an id after `record_id`."""
    return records[bisect.bisect_right(records, _id_key(record_id), key=_record_key) :]


def _cursor_endpoint(records: Records, query: dict[str, str], _url: str) -> dict[str, Any]:
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1)
    if query.get("cursor"):
        try:
            last_id = orjson.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
        except (binascii.Error, ValueError):
            raise _ApiError(400, f"invalid cursor {query['cursor']!r}") from None
        records = _after_id(records, last_id)
    items = records[:limit]
    next_cursor = None
    if len(records) > limit:
        next_cursor = base64.urlsafe_b64encode(orjson.dumps(items[-1]["id"])).decode()
    return {"items": items, "next_cursor": next_cursor}


def _offset_endpoint(records: Records, query: dict[str, str], _url: str) -> dict[str, Any]:
    offset = _int_param(query, "offset", 0, 0)
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1)
    return {"items": records[offset : offset + limit], "total": len(records), "offset": offset}


def _page_endpoint(records: Records, query: dict[str, str], _url: str) -> dict[str, Any]:
    page = _int_param(query, "page", 1, 1)
    per_page = _int_param(query, "per_page", DEFAULT_LIMIT, 1)
    start = (page - 1) * per_page
    return {
        "items": records[start : start + per_page],
        "page": page,
        "total_pages": math.ceil(len(records) / per_page),
    }


def _next_url_endpoint(records: Records, query: dict[str, str], url: str) -> dict[str, Any]:
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1)
    if query.get("after"):
        try:
            after = orjson.loads(query["after"])  # the last id as JSON: 42 or "abc"
        except orjson.JSONDecodeError:
            after = query["after"]
        records = _after_id(records, after)
    items = records[:limit]
    next_url = None
    if len(records) > limit:
        params = {**query, "limit": str(limit), "after": orjson.dumps(items[-1]["id"]).decode()}
        next_url = f"{url}?{urlencode(params)}"
    return {"items": items, "next": next_url}


def _results_endpoint(records: Records, query: dict[str, str], url: str) -> dict[str, Any]:
    """The shape of the connector guide's incremental example: results, next_cursor, has_more."""
    page = _cursor_endpoint(records, {**query, "limit": query.get("page_size", "")}, url)
    cursor = page["next_cursor"]
    return {"results": page["items"], "next_cursor": cursor, "has_more": cursor is not None}


def _link_endpoint(records: Records, query: dict[str, str], url: str) -> Answer:
    """GitHub's shape: the body is the list; the next page is in the `Link` header."""
    page = _int_param(query, "page", 1, 1)
    per_page = _int_param(query, "per_page", DEFAULT_LIMIT, 1)
    start = (page - 1) * per_page
    links = []
    if start + per_page < len(records):
        links.append(f'<{url}?{urlencode({**query, "page": page + 1})}>; rel="next"')
    if page > 1:
        links.append(f'<{url}?{urlencode({**query, "page": page - 1})}>; rel="prev"')
    return records[start : start + per_page], {"Link": ", ".join(links)} if links else {}


def _keyset_endpoint(records: Records, query: dict[str, str], _url: str) -> dict[str, Any]:
    """Stripe's shape: `starting_after` an id, `{"object": "list", "data", "has_more"}`."""
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1)
    if query.get("starting_after"):
        after = query["starting_after"]
        records = _after_id(records, int(after) if after.isdigit() else after)
    return {"object": "list", "data": records[:limit], "has_more": len(records) > limit}


def _count_endpoint(records: Records, _query: dict[str, str], _url: str) -> dict[str, Any]:
    return {"count": len(records)}


_ENDPOINTS = {
    "cursor": _cursor_endpoint,
    "offset": _offset_endpoint,
    "page": _page_endpoint,
    "next_url": _next_url_endpoint,
    "link": _link_endpoint,
    "keyset": _keyset_endpoint,
    "count": _count_endpoint,
    "results": _results_endpoint,
}


class _ApiHandler(QuietHandler):
    server: FakeApiServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        self.server._record(RecordedRequest(self.command, url.path, query, headers, body))
        fault = self.server._take_fault(url.path)
        if fault is not None:
            if fault.kind == "reset":
                self._reset()
                return
            if fault.kind == "status":
                self._send_payload(fault.status, fault.body, fault.headers)
                return
            if fault.kind == "non_json":
                html = fault.body if isinstance(fault.body, str) else _HTML_BODY
                self._send(200, html.encode(), "text/html; charset=utf-8", fault.headers)
                return
            time.sleep(fault.seconds)
        try:
            status, payload = self._route(url.path, query, body)
        except _ApiError as error:
            status, payload = error.status, {"error": str(error)}
        payload, headers = payload if isinstance(payload, tuple) else (payload, {})
        self._send_payload(
            status, payload, headers, truncate=fault is not None and fault.kind == "truncate"
        )

    def _route(self, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        server = self.server
        if path == "/oauth/token":
            if self.command != "POST":
                raise _ApiError(405, "use POST")
            return server._grant(dict(parse_qsl(body.decode())), self.headers.get("Authorization"))
        if self.command == "POST":  # a search endpoint: the parameters are the JSON body
            try:
                fields = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                raise _ApiError(400, "the body is not JSON") from None
            if not isinstance(fields, dict):
                raise _ApiError(400, "the body is not a JSON object")
            query = {**query, **{k: str(v) for k, v in fields.items()}}
        elif self.command != "GET":
            raise _ApiError(405, f"{self.command} not allowed")
        if not server._authorized(self.headers, query):
            return 401, {"error": "unauthorized"}
        style, _, collection = path.strip("/").partition("/")
        parent = None
        if collection.count("/") == 2:  # a child collection: parent/ID/child
            parent_collection, parent_id, collection = collection.split("/")
            parent = (parent_collection, parent_id)
        if path == "/records":  # the guide's endpoint: GET {BASE_URL}/records, users by default
            style, collection = "results", query.get("collection", "users")
        endpoint = _ENDPOINTS.get(style)
        if endpoint is None or not collection:
            raise _ApiError(404, f"no such endpoint {path}")
        # An unencoded "+00:00" offset arrives as " 00:00".
        updated_after = query.get("updated_after", "").replace(" ", "+")
        try:
            records = server.api.records(collection, updated_after or None)
        except KeyError:
            raise _ApiError(404, f"no such collection {collection!r}") from None
        except ValueError:
            raise _ApiError(400, f"invalid updated_after {updated_after!r}") from None
        if parent is not None:
            try:
                parents = server.api.records(parent[0])
            except KeyError:
                raise _ApiError(404, f"no such collection {parent[0]!r}") from None
            if not any(str(r["id"]) == parent[1] for r in parents):
                raise _ApiError(404, f"no {parent[0]} {parent[1]!r}")
            records = [r for r in records if str(r.get("parent_id")) == parent[1]]
        return 200, endpoint(records, query, f"{server.url}{path}")

    def _send_payload(
        self, status: int, payload: Any, headers: dict[str, str], *, truncate: bool = False
    ) -> None:
        """A str as text, anything else as JSON (None: `{"error": "<reason>"}`)."""
        if isinstance(payload, str):
            body, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            if payload is None:
                payload = {"error": HTTPStatus(status).phrase.lower()}
            body, content_type = orjson.dumps(payload), "application/json"
        self._send(status, body, content_type, headers, truncate=truncate)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        *,
        truncate: bool = False,
    ) -> None:
        """Answer; `truncate` sends half of `body` and closes the connection."""
        self.send_response(status)
        if not any(name.lower() == "content-type" for name in headers):
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if truncate:
            self.close_connection = True
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, without a byte of answer."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket really closes (with a reset) when the handler closes its files, next.
        self.connection.close()


class FakeApiServer(LocalServer):
    """Serves a `FakeApi` over HTTP on 127.0.0.1 (see the module docstring for endpoints).

    - `required_headers`: every request but `/oauth/token` must carry these exact values,
      or gets 401 `{"error": "unauthorized"}`; `required_query`: likewise, query parameters;
    - `require_oauth`: every request but `/oauth/token` must also carry
      `Authorization: Bearer <token>` with a token issued by `/oauth/token`, not expired;
    - `/oauth/token` takes the client credentials as form fields or HTTP basic auth and
      checks them (and the refresh token) against `client_id`, `client_secret` and
      `refresh_token`; tokens last `token_expires_in` seconds.
    """

    def __init__(
        self,
        api: FakeApi | None = None,
        *,
        port: int = 0,
        required_headers: dict[str, str] | None = None,
        required_query: dict[str, str] | None = None,
        require_oauth: bool = False,
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        refresh_token: str = "refresh-token",
        token_expires_in: int = 3600,
    ) -> None:
        super().__init__(_ApiHandler, port)
        self.api = api if api is not None else FakeApi()
        self.required_headers = dict(required_headers or {})
        self.required_query = dict(required_query or {})
        self.require_oauth = require_oauth
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_expires_in = token_expires_in
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random: RandomFaults | None = None
        self._rng = random.Random()
        self._fired: list[tuple[str, Fault]] = []
        self._requests: list[RecordedRequest] = []
        self._tokens: dict[str, float] = {}  # access token -> expiry (time.monotonic)
        self._issued: list[str] = []

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def issued_tokens(self) -> list[str]:
        """The access tokens issued so far, oldest first."""
        with self._lock:
            return list(self._issued)

    @property
    def tokens_issued(self) -> int:
        """How many access tokens `/oauth/token` issued."""
        with self._lock:
            return len(self._issued)

    @property
    def pending_faults(self) -> list[Fault]:
        """The injected faults not fired yet, in order."""
        with self._lock:
            return list(self._faults)

    @property
    def fired(self) -> list[tuple[str, Fault]]:
        """`(path, fault)` of every fault fired so far, injected or random, oldest first."""
        with self._lock:
            return list(self._fired)

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next matching requests (see `Fault`)."""
        with self._lock:
            self._faults.extend(faults)

    def inject_random(self, faults: RandomFaults | None) -> None:
        """Misbehave at random from now on (None: stop); injected faults fire first."""
        with self._lock:
            self._random = faults
            self._rng = random.Random(faults.seed if faults else None)

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (the next use gets 401)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self._scripted_fault(path) or self._random_fault(path)
            if fault is not None:
                self._fired.append((path, fault))
            return fault

    def _random_fault(self, path: str) -> Fault | None:
        """A fault drawn by the random mode, if on (the lock is held)."""
        chance = self._random
        if chance is None or (chance.path is not None and not path.startswith(chance.path)):
            return None
        return self._rng.choice(chance.faults) if self._rng.random() < chance.rate else None

    def _scripted_fault(self, path: str) -> Fault | None:
        """The injected fault for this request, if any (the lock is held)."""
        for index, fault in enumerate(self._faults):
            if fault.path is None or path.startswith(fault.path):
                fault._seen += 1
                if fault._seen < fault.nth:
                    return None
                if fault.times is not None and fault._seen - fault.nth + 1 >= fault.times:
                    del self._faults[index]
                return fault
        return None

    def _authorized(self, headers: Any, query: dict[str, str]) -> bool:
        if any(headers.get(name) != value for name, value in self.required_headers.items()):
            return False
        if any(query.get(name) != value for name, value in self.required_query.items()):
            return False
        if not self.require_oauth:
            return True
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        with self._lock:
            return scheme == "Bearer" and self._tokens.get(token, 0.0) > time.monotonic()

    def _grant(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        grant_type = form.get("grant_type")
        if grant_type not in ("client_credentials", "refresh_token"):
            return 400, {"error": "unsupported_grant_type"}
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client"}
        if grant_type == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant"}
        token = f"access-{secrets.token_hex(8)}"
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_expires_in
            self._issued.append(token)
        return 200, {
            "access_token": token,
            "expires_in": self.token_expires_in,
            "token_type": "Bearer",
            "refresh_token": self.refresh_token,
        }


def build_bench_pages(n_records: int, page_size: int) -> list[bytes]:
    """`n_records` records from `make_records`, as JSON pages encoded once.

    Page N is `{"items": [...], "next_page": N + 1}`, the last one with `"next_page": null`.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    n_pages = max(1, math.ceil(n_records / page_size))
    pages = []
    for page in range(n_pages):
        start = page * page_size
        items = make_records(min(page_size, n_records - start), start_id=start + 1)
        next_page = page + 1 if page + 1 < n_pages else None
        pages.append(orjson.dumps({"items": items, "next_page": next_page}))
    return pages


class _StaticHandler(QuietHandler):
    server: StaticPagesServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        page = 0
        for pair in query.split("&"):
            if pair.startswith("page="):
                page = int(pair[5:]) if pair[5:].isdigit() else -1
        pages = self.server.pages
        if path != "/bench" or not 0 <= page < len(pages):
            self.wfile.write(_NOT_FOUND)
            return
        self.wfile.write(self.server._heads[page])
        self.wfile.write(pages[page])


_NOT_FOUND_BODY = b'{"error":"no such page"}'
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_NOT_FOUND_BODY), _NOT_FOUND_BODY)
)


class StaticPagesServer(LocalServer):
    """Serves pre-encoded bodies as fast as the stdlib allows: `GET /bench?page=N` -> `pages[N]`.

    No page parameter means page 0; anything else, or a page out of range, gets 404.
    """

    def __init__(self, pages: list[bytes], *, port: int = 0) -> None:
        super().__init__(_StaticHandler, port)
        self.pages = pages
        self._heads = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(page)
            for page in pages
        ]


def demo_api(users: int = 50) -> FakeApi:
    """Users, and orders of each user (`parent_id`): what the docs' examples read."""
    api = FakeApi({"users": make_records(users)})
    api.add(
        "orders",
        [
            {**order, "parent_id": user}
            for user in range(1, users + 1)
            for order in make_records(user % 4, start_id=user * 100)
        ],
    )
    return api


def main(argv: list[str] | None = None) -> int:
    """Serve benchmark pages or the demo API; print `READY <url>`; serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="Serve benchmark pages or the demo API.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--bench-records", type=int, help="benchmark pages: records in all")
    mode.add_argument("--demo-api", action="store_true", help="the demo API of the docs")
    parser.add_argument("--page-size", type=int, default=1000, help="benchmark records per page")
    parser.add_argument("--token", help="demo API: require `Authorization: Bearer TOKEN`")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose")
    args = parser.parse_args(argv)
    server: LocalServer
    if args.demo_api:
        required = {"Authorization": f"Bearer {args.token}"} if args.token else None
        server = FakeApiServer(demo_api(), port=args.port, required_headers=required)
    else:
        pages = build_bench_pages(args.bench_records, args.page_size)
        server = StaticPagesServer(pages, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
