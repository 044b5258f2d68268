"""Breaks 'pagination-ends': reads its "cursor" from a field that never changes."""

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class LoopsSource(RestSource):
    paginator = CursorPaginator(cursor_path="total", param="offset")
    endpoints = {"users": Endpoint(path="offset/users", records_path="items")}
