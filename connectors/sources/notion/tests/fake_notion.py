"""A local server answering like Notion's API (https://developers.notion.com/reference).

- `POST /v1/search` with a JSON body: `filter: {property: object, value: page|database}`,
  `sort: {timestamp: last_edited_time, direction}`, `page_size` (at most 100) and
  `start_cursor`. As Notion does, a `start_cursor` in the query string of a POST is
  ignored: only the body's counts.
- `GET /v1/users?start_cursor=&page_size=`.
- Lists answer `{"object": "list", "results", "next_cursor", "has_more", "type", ...}`.
- `Authorization: Bearer <token>` and `Notion-Version` are required. Errors answer
  `{"object": "error", "status", "code", "message"}`: 401 `unauthorized`, 400
  `missing_version` or `validation_error`, 429 `rate_limited` with `Retry-After`.
- Times are ISO with milliseconds and `Z`; `last_edited_time` is rounded down to the minute.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

TOKEN = "secret_FakeNotionIntegrationT0ken"
VERSION = "2022-06-28"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _time(moment: datetime) -> str:
    return (
        moment.replace(second=0, microsecond=0)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def workspace(pages: int = 230, databases: int = 12, users: int = 130) -> dict[str, list[dict]]:
    """Pages and databases edited in an order of their own, minutes apart, and users."""

    def item(kind: str, n: int, total: int) -> dict:
        edited = START + timedelta(minutes=7 * ((n * 31) % total))
        return {
            "object": kind,
            "id": str(uuid.UUID(int=n + (0 if kind == "page" else 10**6))),
            "created_time": _time(START),
            "last_edited_time": _time(edited),
            "archived": False,
            "url": f"https://www.notion.so/{kind}-{n}",
        }

    people = [
        {
            "object": "user",
            "id": str(uuid.UUID(int=10**7 + n)),
            "type": "person",
            "name": f"Person {n}",
            "person": {"email": f"p{n}@example.com"},
        }
        for n in range(users)
    ]
    return {
        "page": [item("page", n, pages) for n in range(pages)],
        "database": [item("database", n, databases) for n in range(databases)],
        "users": people,
    }


class _Handler(QuietHandler):
    server: FakeNotion

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(("POST", url.path, dict(parse_qsl(url.query)), body))
        if self._refused() or url.path != "/v1/search":
            return (
                None if self.server.answered else self._error(404, "object_not_found", "Not found.")
            )
        kind = body.get("filter", {}).get("value")
        if kind not in ("page", "database"):
            return self._error(
                400, "validation_error", "body.filter.value should be `page` or `database`."
            )
        items = self.server.data[kind]
        direction = body.get("sort", {}).get("direction", "descending")
        items = sorted(
            items, key=lambda i: (i["last_edited_time"], i["id"]), reverse=direction == "descending"
        )
        self._page(items, body.get("start_cursor"), body.get("page_size", 100), "page_or_database")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        self.server.requests.append(("GET", url.path, query, None))
        if self._refused():
            return None
        if url.path != "/v1/users":
            return self._error(400, "invalid_request_url", "Invalid request URL.")
        self._page(
            self.server.data["users"],
            query.get("start_cursor"),
            int(query.get("page_size", 100)),
            "user",
        )

    def _refused(self) -> bool:
        """Answer the error of a request Notion refuses; whether there was one."""
        self.server.versions.add(self.headers.get("Notion-Version"))
        if self.server.rate_limits:
            self.server.rate_limits -= 1
            message = "You have been rate limited. Please try again in a few minutes."
            self._error(429, "rate_limited", message, {"Retry-After": "1"})
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(401, "unauthorized", "API token is invalid.")
        elif "Notion-Version" not in self.headers:
            message = (
                "Notion-Version header failed validation: Notion-Version header should be "
                "defined, instead was `undefined`."
            )
            self._error(400, "missing_version", message)
        else:
            return False
        return True

    def _page(self, items: list[dict], cursor: str | None, size: int, kind: str) -> None:
        if not isinstance(size, int) or not 1 <= size <= 100:
            return self._error(400, "validation_error", "body.page_size should be ≤ `100`.")
        ids = [i["id"] for i in items]
        if cursor is not None and cursor not in ids:
            return self._error(
                400, "validation_error", "The start_cursor provided is invalid: " + str(cursor)
            )
        start = ids.index(cursor) if cursor else 0
        page, rest = items[start : start + size], items[start + size :]
        body = {
            "object": "list",
            "results": page,
            "next_cursor": rest[0]["id"] if rest else None,
            "has_more": bool(rest),
            "type": kind,
            kind: {},
            "request_id": str(uuid.uuid4()),
        }
        self.send_answer(
            200, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"}
        )

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        body = {"object": "error", "status": status, "code": code, "message": message}
        self.send_answer(
            status,
            json.dumps(body).encode(),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


class FakeNotion(LocalServer):
    def __init__(self, **sizes: int) -> None:
        super().__init__(_Handler)
        self.data = workspace(**sizes)
        self.requests: list[tuple[str, str, dict, dict | None]] = []
        self.rate_limits = 0
        self.versions: set[str | None] = set()
