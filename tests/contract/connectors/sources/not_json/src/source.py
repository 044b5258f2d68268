"""Breaks 'json': adds a Python object to each record."""

from datetime import datetime

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class NotJsonSource(RestSource):
    paginator = CursorPaginator()
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}

    def parse_records(self, endpoint, response, body):
        records = super().parse_records(endpoint, response, body)
        for record in records:
            record.data["seen"] = {datetime.now()}
        return records
