"""Breaks 'ids': takes a field many records share as the id."""

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class DuplicateIdsSource(RestSource):
    paginator = CursorPaginator()
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items", id_field="country")}
