"""The `gbif` source: occurrences of the GBIF occurrence search API.

API docs: https://techdocs.gbif.org/en/openapi/v1/occurrence#/Searching%20occurrences
"""

from typing import Any

import requests
from pydantic import Field

from bizon_core.errors import SourceError
from bizon_core.source.models import SourceRecord
from bizon_core.source.pagination import OffsetPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig

#: The search pages through the first 100,000 matches only (offset + limit).
SEARCH_WINDOW = 100_000

QueryValue = str | int | float | bool


class GbifConfig(RestSourceConfig):
    """`source:` of a gbif pipeline: the occurrence search's filters."""

    query: dict[str, QueryValue | list[QueryValue]] = Field(
        default_factory=dict,
        description="Search filters, e.g. {country: DK, taxonKey: 212, year: '2020,2024'}; "
        "a list matches any of its values.",
    )


class GbifSource(RestSource):
    """Occurrences matching a query: no auth, offset pages until `endOfRecords`,
    incremental on the day GBIF last interpreted each record."""

    base_url = "https://api.gbif.org/v1"
    config_class = GbifConfig
    config: GbifConfig
    # 300 is the most GBIF returns a page; it silently caps a larger limit.
    paginator = OffsetPaginator(limit=300, end_path="endOfRecords")
    endpoints = {
        "occurrence": Endpoint(
            path="occurrence/search",
            records_path="results",
            id_field="key",
            # lastInterpreted takes a date range; the records of that day are filtered here.
            incremental=Incremental(
                param="lastInterpreted",
                format="%Y-%m-%d,*",
                cursor_field="lastInterpreted",
                client_filter=True,
            ),
        )
    }

    def config_params(self, endpoint: Endpoint) -> dict[str, Any]:
        return dict(self.config.query)

    def parse_records(
        self, endpoint: Endpoint, response: requests.Response, body: Any
    ) -> list[SourceRecord]:
        if body.get("offset") == 0 and body.get("count", 0) > SEARCH_WINDOW:
            raise SourceError(
                f"gbif: the query matches {body['count']:,} occurrences, but the search API "
                f"pages through the first {SEARCH_WINDOW:,} only: narrow source.query (by "
                "year, country, taxonKey, ...) or use GBIF's download API"
            )
        return super().parse_records(endpoint, response, body)
