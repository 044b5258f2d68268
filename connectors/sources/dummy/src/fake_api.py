"""An in-process fake of the dummy API, mounted on the source's session: no network needed.

    GET  https://api.dummy.com/v1/{creatures|plants}?limit=L&cursor=C&updated_after=ISO
         -> {"items": [...], "next_cursor": "..." | null}
    GET  https://api.dummy.com/v1/{stream}/count -> {"count": N}
    POST https://api.dummy.com/oauth/token (client_credentials or refresh_token grant)
         -> {"access_token": "...", "expires_in": 3600}

Every request but the token one needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import orjson
import requests
from requests.adapters import BaseAdapter

BASE_URL = "https://api.dummy.com"
RECORDS_PER_STREAM = 25
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_SPECIES = ["dragon", "griffin", "unicorn", "phoenix", "kraken"]
_FAMILIES = ["rosaceae", "fabaceae", "poaceae", "asteraceae", "orchidaceae"]


def _creature(i: int) -> dict:
    return {
        "id": i,
        "name": f"creature-{i}",
        "species": _SPECIES[i % len(_SPECIES)],
        "age": 3 * i % 97,
        "updated_at": (_EPOCH + timedelta(hours=i)).isoformat(),
    }


def _plant(i: int) -> dict:
    return {
        "id": i,
        "name": f"plant-{i}",
        "family": _FAMILIES[i % len(_FAMILIES)],
        "height_cm": round(4.5 * i, 1),
        "updated_at": (_EPOCH + timedelta(hours=2 * i)).isoformat(),
    }


DATA = {
    "creatures": [_creature(i) for i in range(1, RECORDS_PER_STREAM + 1)],
    "plants": [_plant(i) for i in range(1, RECORDS_PER_STREAM + 1)],
}


class DummyApiAdapter(BaseAdapter):
    """A `requests` transport adapter that answers like the dummy API."""

    def __init__(self) -> None:
        super().__init__()
        self._issued_tokens: set[str] = set()

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        url = urlsplit(request.url or "")
        if request.method == "POST" and url.path == "/oauth/token":
            return self._token(request)
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip()
        if not token or (token.startswith("dummy-oauth-") and token not in self._issued_tokens):
            return _response(self, request, 401, {"error": "unauthorized"})
        parts = url.path.removeprefix("/v1/").split("/")
        if parts[0] not in DATA:
            return _response(self, request, 404, {"error": f"no such resource {url.path}"})
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        items = DATA[parts[0]]
        if "updated_after" in query:
            after = datetime.fromisoformat(query["updated_after"].replace("Z", "+00:00"))
            items = [r for r in items if datetime.fromisoformat(r["updated_at"]) > after]
        if parts[1:] == ["count"]:
            return _response(self, request, 200, {"count": len(items)})
        start = int(query.get("cursor", "0") or 0)
        end = start + int(query.get("limit", "10"))
        next_cursor = str(end) if end < len(items) else None
        return _response(
            self, request, 200, {"items": items[start:end], "next_cursor": next_cursor}
        )

    def close(self) -> None:
        self._issued_tokens.clear()

    def _token(self, request: requests.PreparedRequest) -> requests.Response:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if not form.get("client_id") or not form.get("client_secret"):
            return _response(self, request, 401, {"error": "invalid_client"})
        token = f"dummy-oauth-{secrets.token_hex(8)}"
        self._issued_tokens.add(token)
        return _response(self, request, 200, {"access_token": token, "expires_in": 3600})


def _response(
    adapter: BaseAdapter, request: requests.PreparedRequest, status: int, payload: dict
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = orjson.dumps(payload)
    response.headers["Content-Type"] = "application/json"
    response.url = request.url or ""
    response.request = request
    response.connection = adapter  # as requests' own adapters do: lets auth hooks resend
    response.encoding = "utf-8"
    return response
