"""A local server answering like Stripe's list endpoints (https://docs.stripe.com/api).

`GET /v1/customers|charges|invoices` answers `{"object": "list", "url", "has_more",
"data"}`, newest first, `limit` 1 to 100 (default 10); `starting_after=<id>` continues
after that object, `created[gte|gt|lte|lt]=<epoch>` filters, `expand[]=data.<field>`
replaces an id by its object (a deleted customer by `{"id", "object", "deleted": true}`).
`Authorization: Bearer <secret key>` is required. Errors answer
`{"error": {"type", "message", "param"?, "code"?}}`: 401 for a missing or wrong key (the
key masked), 400 for a bad parameter, 429 `rate_limit` when told to.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

SECRET_KEY = "sk_test_51FakeKey0000aBcD"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
EXPANDABLE = {"charges": {"customer"}, "invoices": {"customer"}, "customers": set()}
DELETED_CUSTOMER = "cus_0003"


def account(customers: int = 230, charges: int = 180, invoices: int = 120) -> dict[str, list]:
    """Objects newest first, one created an hour after the other; cus_0003 was deleted."""
    people = [
        {
            "id": f"cus_{n:04d}",
            "object": "customer",
            "created": START + n * 3600,
            "email": f"c{n}@example.com",
            "livemode": False,
            "metadata": {},
        }
        for n in range(1, customers + 1)
    ]

    def owned(prefix: str, kind: str, count: int, extra: dict) -> list[dict]:
        return [
            {
                "id": f"{prefix}_{n:04d}",
                "object": kind,
                "created": START + n * 1800,
                "customer": f"cus_{n % customers + 1:04d}",
                **extra,
            }
            for n in range(1, count + 1)
        ]

    return {
        "customers": [p for p in people if p["id"] != DELETED_CUSTOMER][::-1],
        "charges": owned(
            "ch", "charge", charges, {"amount": 1000, "currency": "usd", "paid": True}
        )[::-1],
        "invoices": owned("in", "invoice", invoices, {"amount_due": 500, "status": "paid"})[::-1],
    }


class _Handler(QuietHandler):
    server: FakeStripe

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.requests.append((url.path, query))
        if self.server.rate_limits:
            self.server.rate_limits -= 1
            return self._error(429, "Too many requests hit the API too quickly.", code="rate_limit")
        auth = self.headers.get("Authorization", "")
        if not auth:
            return self._error(401, "You did not provide an API key.")
        if auth != f"Bearer {SECRET_KEY}":
            key = auth.removeprefix("Bearer ")
            return self._error(401, f"Invalid API Key provided: {key[:8]}********{key[-4:]}")
        resource = url.path.removeprefix("/v1/")
        if resource not in self.server.data:
            return self._error(404, f"Unrecognized request URL (GET: {url.path}).")
        one = {name: values[-1] for name, values in query.items()}
        limit = one.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return self._error(400, f"Invalid integer: {limit}", param="limit")
        objects = self.server.data[resource]
        for op, test in {
            "gte": int.__ge__,
            "gt": int.__gt__,
            "lte": int.__le__,
            "lt": int.__lt__,
        }.items():
            if f"created[{op}]" in one:
                bound = int(one[f"created[{op}]"])
                objects = [o for o in objects if test(o["created"], bound)]
        if "starting_after" in one:
            ids = [o["id"] for o in self.server.data[resource]]
            if one["starting_after"] not in ids:
                kind = resource.removesuffix("s")
                return self._error(
                    400,
                    f"No such {kind}: '{one['starting_after']}'",
                    param="starting_after",
                    code="resource_missing",
                )
            after = self.server.data[resource][ids.index(one["starting_after"])]["created"]
            objects = [o for o in objects if o["created"] < after]
        expand = query.get("expand[]", [])
        for path in expand:
            if path.removeprefix("data.") not in EXPANDABLE[resource] or not path.startswith(
                "data."
            ):
                return self._error(
                    400, f"This property cannot be expanded ({path}).", param="expand"
                )
        page = [self._expanded(o, expand) for o in objects[: int(limit)]]
        body = {
            "object": "list",
            "url": url.path,
            "has_more": len(objects) > int(limit),
            "data": page,
        }
        self.send_answer(200, json.dumps(body).encode(), self._headers)

    _headers = {
        "Content-Type": "application/json",
        "Request-Id": "req_fake",
        "Stripe-Version": "2024-06-20",
    }

    def _expanded(self, item: dict, expand: list[str]) -> dict:
        if "data.customer" not in expand:
            return item
        customers = {c["id"]: c for c in self.server.data["customers"]}
        gone = {"id": item["customer"], "object": "customer", "deleted": True}
        return {**item, "customer": customers.get(item["customer"], gone)}

    def _error(self, status: int, message: str, **fields: str) -> None:
        error = {"type": "invalid_request_error", "message": message, **fields}
        self.send_answer(status, json.dumps({"error": error}).encode(), self._headers)


class FakeStripe(LocalServer):
    def __init__(self, **sizes: int) -> None:
        super().__init__(_Handler)
        self.data = account(**sizes)
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.rate_limits = 0
