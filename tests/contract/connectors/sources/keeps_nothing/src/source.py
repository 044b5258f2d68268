"""Breaks 'incremental-keeps-changes': its incremental filter keeps nothing."""

from bizon_core.source.models import SourceIteration
from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class KeepsNothingSource(RestSource):
    paginator = CursorPaginator()
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}

    def get_records_after(self, source_state, pagination=None):
        page = self.get(pagination)
        return SourceIteration(records=[], next_pagination=page.next_pagination)
