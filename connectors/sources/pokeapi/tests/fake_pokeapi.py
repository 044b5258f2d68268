"""A local server answering like PokeAPI's named resource lists (https://pokeapi.co/docs/v2).

`GET /api/v2/{resource}/?offset=O&limit=L` (default limit 20) answers
`{"count", "next", "previous", "results": [{"name", "url"}]}` with absolute URLs, `next`
and `previous` null at the ends; an unknown resource answers 404 with the text `Not Found`.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

RESOURCES = {
    "pokemon": [f"pokemon-{i}" for i in range(1, 251)],
    "berry": ["cheri", "chesto", "pecha", "rawst", "aspear", "leppa", "oran"],
    "item": [f"item-{i}" for i in range(1, 121)],
}


class _Handler(QuietHandler):
    server: FakePokeApi

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.paths.append(url.path)
        resource = url.path.removeprefix("/api/v2/").strip("/")
        if resource not in RESOURCES:
            return self.send_answer(404, b"Not Found", {"Content-Type": "text/plain"})
        query = dict(parse_qsl(url.query))
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        names = RESOURCES[resource]
        base = f"{self.server.url}/api/v2/{resource}/"

        def page(at: int) -> str:
            return f"{base}?{urlencode({'offset': at, 'limit': limit})}"

        body = {
            "count": len(names),
            "next": page(offset + limit) if offset + limit < len(names) else None,
            "previous": page(max(offset - limit, 0)) if offset > 0 else None,
            "results": [
                {"name": name, "url": f"{base}{offset + i + 1}/"}
                for i, name in enumerate(names[offset : offset + limit])
            ],
        }
        self.send_answer(
            200, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"}
        )


class FakePokeApi(LocalServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.paths: list[str] = []
