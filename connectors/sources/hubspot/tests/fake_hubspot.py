"""A local server answering like HubSpot's CRM v3 API (https://developers.hubspot.com/docs/api).

- `GET /crm/v3/objects/{contacts|companies|deals}?limit=&after=&properties=a,b`: at most
  100 a page; `{"results": [...], "paging": {"next": {"after", "link"}}}`, no `paging` on
  the last page.
- `POST /crm/v3/objects/{type}/search` with `filterGroups` (`GTE`, `GT`, `LTE`, `LT`,
  `EQ`; datetimes as epoch milliseconds), `sorts`, `limit` (at most 200), `after` and
  `properties`: `{"total", "results", "paging"}`. Only the first 10,000 results can be
  paged through: a later `after` answers 400.
- `POST /oauth/v1/token` (form: `grant_type=refresh_token`, `client_id`,
  `client_secret`, `refresh_token`) answers an access token for 30 minutes.
- `Authorization: Bearer <private app token or access token>`; errors answer
  `{"status": "error", "message", "correlationId", "category"}`; 429 `RATE_LIMIT` when told.
- Objects: `{"id", "properties": {..., "hs_object_id"}, "createdAt", "updatedAt", "archived"}`;
  property values are strings, the last-modified one equal to `updatedAt`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

PRIVATE_APP_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "client-1", "client-secret-1", "refresh-1"
ACCESS_TOKEN = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4"
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
DEFAULTS = {
    "contacts": ["email", "firstname"],
    "companies": ["name", "domain"],
    "deals": ["dealname", "amount"],
}
START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 10_000


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def crm(contacts: int = 450, companies: int = 120, deals: int = 160) -> dict[str, list[dict]]:
    """Objects by id, each modified a few seconds apart in an order of its own."""

    def objects(kind: str, count: int) -> list[dict]:
        made = []
        for n in range(1, count + 1):
            updated = _iso(START + timedelta(seconds=7 * ((n * 7919) % count)))
            props = {name: f"{name}-{n}" for name in DEFAULTS[kind]} | {"extra": f"x{n}"}
            props |= {"hs_object_id": str(n), "createdate": _iso(START), MODIFIED[kind]: updated}
            made.append(
                {
                    "id": str(n),
                    "properties": props,
                    "createdAt": _iso(START),
                    "updatedAt": updated,
                    "archived": False,
                }
            )
        return made

    return {
        "contacts": objects("contacts", contacts),
        "companies": objects("companies", companies),
        "deals": objects("deals", deals),
    }


class _Handler(QuietHandler):
    server: FakeHubspot

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.requests.append(("GET", url.path, query))
        kind = url.path.removeprefix("/crm/v3/objects/")
        if self._refused(kind):
            return None
        limit = int(query.get("limit", 10))
        if limit > 100:
            return self._error(400, "limit must be at most 100", "VALIDATION_ERROR")
        wanted = query["properties"].split(",") if "properties" in query else None
        self._page(
            kind, self.server.data[kind], int(query.get("after", 0)), limit, wanted, total=False
        )

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if url.path == "/oauth/v1/token":
            return self._token(dict(parse_qsl(raw.decode())))
        body = json.loads(raw or b"{}")
        self.server.requests.append(("POST", url.path, body))
        kind = url.path.removeprefix("/crm/v3/objects/").removesuffix("/search")
        if self._refused(kind) or not url.path.endswith("/search"):
            return None
        limit, after = int(body.get("limit", 10)), int(body.get("after", 0))
        if limit > 200:
            return self._error(400, "limit must be at most 200", "VALIDATION_ERROR")
        if after + limit > WINDOW:
            return self._error(
                400, f"after + limit may not exceed {WINDOW} results", "VALIDATION_ERROR"
            )
        found = [
            o for o in self.server.data[kind] if self._matches(o, body.get("filterGroups", []))
        ]
        for sort in reversed(body.get("sorts", [])):
            found.sort(
                key=lambda o: o["properties"][sort["propertyName"]],
                reverse=sort.get("direction") == "DESCENDING",
            )
        self._page(kind, found, after, limit, body.get("properties"), total=True)

    def _page(
        self,
        kind: str,
        found: list[dict],
        after: int,
        limit: int,
        wanted: list[str] | None,
        total: bool,
    ) -> None:
        shown = (wanted or DEFAULTS[kind]) + ["hs_object_id", "createdate", MODIFIED[kind]]
        results = [
            {**o, "properties": {k: o["properties"].get(k) for k in shown}}
            for o in found[after : after + limit]
        ]
        body: dict = {"total": len(found)} if total else {}
        body["results"] = results
        if after + limit < len(found):
            link = f"{self.server.url}/crm/v3/objects/{kind}?after={after + limit}"
            body["paging"] = {"next": {"after": str(after + limit), "link": link}}
        self.send_answer(
            200, json.dumps(body).encode(), {"Content-Type": "application/json;charset=utf-8"}
        )

    @staticmethod
    def _matches(item: dict, groups: list[dict]) -> bool:
        def test(f: dict) -> bool:
            value = item["properties"][f["propertyName"]]
            if f["propertyName"] in MODIFIED.values():
                value = int(datetime.fromisoformat(value).timestamp() * 1000)
            other = type(value)(f["value"])
            ops = {
                "GTE": value >= other,
                "GT": value > other,
                "LTE": value <= other,
                "LT": value < other,
                "EQ": value == other,
            }
            return ops[f["operator"]]

        return not groups or any(all(test(f) for f in g["filters"]) for g in groups)

    def _token(self, form: dict[str, str]) -> None:
        self.server.token_requests.append(form)
        expected = {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        if form != expected:
            body = {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
            return self.send_answer(
                400, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
        body = {
            "token_type": "bearer",
            "refresh_token": REFRESH_TOKEN,
            "access_token": ACCESS_TOKEN,
            "expires_in": 1800,
        }
        self.send_answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _refused(self, kind: str) -> bool:
        """Answer the error of a request HubSpot refuses; whether there was one."""
        if self.server.rate_limits:
            self.server.rate_limits -= 1
            self._error(429, "You have reached your secondly limit.", "RATE_LIMIT")
        elif self.headers.get("Authorization") not in (
            f"Bearer {PRIVATE_APP_TOKEN}",
            f"Bearer {ACCESS_TOKEN}",
        ):
            message = (
                "Authentication credentials not found. This API supports OAuth 2.0 authentication."
            )
            self._error(401, message, "INVALID_AUTHENTICATION")
        elif kind not in self.server.data:
            self._error(404, f"Unable to infer object type from: {kind}", "OBJECT_NOT_FOUND")
        else:
            return False
        return True

    def _error(self, status: int, message: str, category: str) -> None:
        body = {
            "status": "error",
            "message": message,
            "correlationId": "b8b47229-0f3a-4ee2-9c6a-4b8e1f2b9c7d",
            "category": category,
        }
        self.send_answer(
            status, json.dumps(body).encode(), {"Content-Type": "application/json;charset=utf-8"}
        )


class FakeHubspot(LocalServer):
    def __init__(self, **sizes: int) -> None:
        super().__init__(_Handler)
        self.data = crm(**sizes)
        self.requests: list[tuple[str, str, dict]] = []
        self.token_requests: list[dict[str, str]] = []
        self.rate_limits = 0
