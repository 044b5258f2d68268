"""Keeps every rule: the positive control of the contract suite's tests."""

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource


class GoodSource(RestSource):
    paginator = CursorPaginator()
    endpoints = {
        "users": Endpoint(
            path="cursor/users",
            records_path="items",
            incremental=Incremental(param="updated_after", cursor_field="updated_at"),
        )
    }
