"""The `hubspot` source: contacts, companies and deals of a HubSpot account (CRM v3).

API docs: https://developers.hubspot.com/docs/api/crm/contacts (and companies, deals),
https://developers.hubspot.com/docs/api/crm/search, https://developers.hubspot.com/docs/api/oauth/tokens,
https://developers.hubspot.com/docs/api/usage-details (rate limits), https://developers.hubspot.com/docs/api/error-handling
"""

import logging
from typing import Any

from pydantic import Field

from bizon_core.errors import SourceError
from bizon_core.source.incremental import cursor_instant
from bizon_core.source.models import SourceIncrementalState, SourceIteration
from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig

logger = logging.getLogger(__name__)

#: A search pages through its first 10,000 results only.
SEARCH_WINDOW = 10_000
#: The property each object type's last change is in.
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}


#: Incremental through search (see `get_records_after`), which takes epoch milliseconds.
MODIFIED_SINCE = Incremental(cursor_field="updatedAt", format="epoch_ms")


def _objects(kind: str) -> Endpoint:
    return Endpoint(
        path=f"crm/v3/objects/{kind}",
        records_path="results",
        params={"limit": 100},
        incremental=MODIFIED_SINCE,
    )


class HubspotConfig(RestSourceConfig):
    """`source:` of a hubspot pipeline: the properties to read, per stream."""

    properties: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per stream, the properties to read instead of HubSpot's default "
        "ones, e.g. {contacts: [email, firstname, lifecyclestage]}.",
    )


class HubspotSource(RestSource):
    """Contacts, companies and deals: a private app's token or OAuth, `paging.next.after`
    pages, incremental through search on the last-modified property."""

    base_url = "https://api.hubapi.com"
    config_class = HubspotConfig
    config: HubspotConfig
    paginator = CursorPaginator(cursor_path="paging.next.after", param="after")
    error_message_path = "message"
    endpoints = {
        "contacts": _objects("contacts"),
        "companies": _objects("companies"),
        "deals": _objects("deals"),
    }

    def config_params(self, endpoint: Endpoint) -> dict[str, Any]:
        properties = self.config.properties.get(self.config.stream)
        if not properties:
            return {}
        return {"properties": properties if endpoint.method == "POST" else ",".join(properties)}

    def get_records_after(
        self, source_state: SourceIncrementalState, pagination: dict | None = None
    ) -> SourceIteration:
        """Objects modified since the last run, oldest first. Past the 10,000 results a
        search can page through, a new search starts from the last modification seen."""
        pagination = pagination or {}
        since = pagination.get("since", MODIFIED_SINCE.value(source_state.last_run))
        search = self.endpoint.model_copy(
            update={"path": f"{self.endpoint.path}/search", "method": "POST", "params": {}}
        )
        prop = LAST_MODIFIED[self.config.stream]
        query = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "GTE", "value": str(since)}]}
            ],
            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
            "limit": 200,
        }
        page = self.fetch_page(search, pagination.get("page"), query, {})
        if not page.next_pagination:
            return page
        if int(page.next_pagination["cursor"]) + query["limit"] <= SEARCH_WINDOW:
            return SourceIteration(
                records=page.records, next_pagination={"since": since, "page": page.next_pagination}
            )
        last = MODIFIED_SINCE.value(cursor_instant(page.records[-1].data["updatedAt"]))
        if last == since:
            raise SourceError(
                f"hubspot: more than {SEARCH_WINDOW:,} {self.config.stream} were modified at the "
                f"same millisecond ({since}); the search cannot page past them"
            )
        logger.info(
            "%s: a search's %d results read; searching from %d",
            self.config.stream,
            SEARCH_WINDOW,
            last,
        )
        return SourceIteration(records=page.records, next_pagination={"since": last})
