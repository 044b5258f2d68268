"""Breaks 'pagination-ends': a new next_pagination on every page, forever."""

from bizon_core.source.models import SourceIteration
from bizon_core.source.rest import Endpoint, RestSource


class NeverEndsSource(RestSource):
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}

    def get(self, pagination=None):
        page = super().get(pagination)
        number = (pagination or {}).get("n", 0) + 1
        return SourceIteration(records=page.records, next_pagination={"n": number})
