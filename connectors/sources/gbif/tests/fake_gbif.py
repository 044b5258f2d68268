"""A local server answering like GBIF's occurrence search (https://techdocs.gbif.org).

`GET /v1/occurrence/search?offset=O&limit=L&<filters>` answers
`{"offset", "limit", "endOfRecords", "count", "results", "facets"}`; `limit` defaults to
20 and is capped at 300 without an error; offset + limit may not exceed 100,000. Filters
repeat for "any of" (`country=DK&country=SE`); `year` and `lastInterpreted` take a range
`from,to` with `*` for an open end (dates as yyyy-MM-dd). A bad value answers 400 with a
plain-text reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

MAX_LIMIT, WINDOW = 300, 100_000
COUNTRIES = ["DK", "SE", "NO"]
TAXA = [212, 359, 216]  # Aves, Mammalia, Insecta


def occurrences(count: int = 700) -> list[dict]:
    """`count` occurrences, each interpreted an hour after the one before."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        {
            "key": 4_000_000_000 + i,
            "datasetKey": "50c9509d-22c7-4a22-a47d-8c48425ef4a7",
            "basisOfRecord": "HUMAN_OBSERVATION",
            "countryCode": COUNTRIES[i % 3],
            "taxonKey": TAXA[i % 3] * 1000 + i,
            "classKey": TAXA[i % 3],
            "year": 2018 + i % 8,
            "eventDate": f"{2018 + i % 8}-05-0{1 + i % 9}T08:00:00",
            "lastInterpreted": (start + timedelta(hours=i)).isoformat(timespec="milliseconds"),
        }
        for i in range(count)
    ]


def _in_range(value: str | int, text: str) -> bool:
    low, _, high = text.partition(",") if "," in text else (text, "", text)
    return (low == "*" or str(value) >= low) and (high == "*" or str(value)[: len(high)] <= high)


class _Handler(QuietHandler):
    server: FakeGbif

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.queries.append(query)
        if url.path.rstrip("/") != "/v1/occurrence/search":
            return self.send_answer(404, b"", {})
        try:
            offset = int(query.get("offset", ["0"])[0])
            limit = min(int(query.get("limit", ["20"])[0]), MAX_LIMIT)
        except ValueError:
            return self._bad("offset and limit must be integers")
        if offset + limit > WINDOW:
            return self._bad(f"Max offset of {WINDOW} exceeded: {offset} + {limit}")
        for country in query.get("country", []):
            if len(country) != 2 or not country.isupper():
                return self._bad(f"Invalid country code: {country}")
        found = [o for o in self.server.records if self._matches(o, query)]
        body = {
            "offset": offset,
            "limit": limit,
            "endOfRecords": offset + limit >= len(found),
            "count": len(found),
            "results": found[offset : offset + limit],
            "facets": [],
        }
        self.send_answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    @staticmethod
    def _matches(occurrence: dict, query: dict[str, list[str]]) -> bool:
        tests = {
            "country": lambda v: occurrence["countryCode"] == v,
            "taxonKey": lambda v: int(v) in (occurrence["taxonKey"], occurrence["classKey"]),
            "year": lambda v: _in_range(occurrence["year"], v),
            "lastInterpreted": lambda v: _in_range(occurrence["lastInterpreted"][:10], v),
        }
        wanted = [(test, query[name]) for name, test in tests.items() if name in query]
        return all(any(test(value) for value in values) for test, values in wanted)

    def _bad(self, reason: str) -> None:
        self.send_answer(400, reason.encode(), {"Content-Type": "text/plain"})


class FakeGbif(LocalServer):
    def __init__(self, records: list[dict] | None = None) -> None:
        super().__init__(_Handler)
        self.records = occurrences() if records is None else records
        self.queries: list[dict[str, list[str]]] = []
