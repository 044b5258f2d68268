"""The `stripe` source: customers, charges and invoices of a Stripe account.

API docs: https://docs.stripe.com/api/pagination, https://docs.stripe.com/api/expanding_objects,
https://docs.stripe.com/api/customers/list (and charges, invoices), https://docs.stripe.com/api/errors
"""

from typing import Any

from pydantic import Field, field_validator

from bizon_core.source.pagination import KeysetPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig


def _list(resource: str) -> Endpoint:
    # {"object": "list", "url", "has_more", "data": [...]}, newest first.
    return Endpoint(
        path=resource,
        records_path="data",
        params={"limit": 100},
        incremental=Incremental(
            param="created[gte]", end_param="created[lt]", format="epoch", cursor_field="created"
        ),
    )


class StripeConfig(RestSourceConfig):
    """`source:` of a stripe pipeline: which related objects to expand."""

    expand: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per stream, fields to expand from an id into the object, e.g. "
        "{charges: [customer]}.",
    )

    @field_validator("expand")
    @classmethod
    def _streams_known(cls, expand: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(expand) - set(StripeSource.endpoints))
        if unknown:
            streams = ", ".join(StripeSource.endpoints)
            raise ValueError(f"unknown stream {', '.join(unknown)} (streams: {streams})")
        return expand


class StripeSource(RestSource):
    """Customers, charges and invoices: a secret key, `starting_after` pages until
    `has_more` is false, incremental on `created`."""

    base_url = "https://api.stripe.com/v1"
    config_class = StripeConfig
    config: StripeConfig
    paginator = KeysetPaginator(id_field="id", param="starting_after", has_more_path="has_more")
    error_message_path = "error.message"
    endpoints = {
        "customers": _list("customers"),
        "charges": _list("charges"),
        "invoices": _list("invoices"),
    }

    def config_params(self, endpoint: Endpoint) -> dict[str, Any]:
        # A list expands the fields of its objects: `data.customer`, not `customer`.
        fields = self.config.expand.get(self.config.stream, [])
        return {"expand[]": [f"data.{field}" for field in fields]} if fields else {}
