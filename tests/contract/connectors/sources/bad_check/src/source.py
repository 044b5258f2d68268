"""Breaks 'check-connection': returns a bare bool."""

from bizon_core.source.rest import Endpoint, RestSource


class BadCheckSource(RestSource):
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}

    def check_connection(self):
        return True
