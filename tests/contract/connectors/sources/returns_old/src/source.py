"""Breaks 'incremental-only-newer': "incremental" returns everything."""

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class ReturnsOldSource(RestSource):
    paginator = CursorPaginator()
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}

    def get_records_after(self, source_state, pagination=None):
        return self.get(pagination)
