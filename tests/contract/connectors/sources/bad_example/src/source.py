"""Breaks 'example-configs': its example misspells a field."""

from bizon_core.source.rest import Endpoint, RestSource


class BadExampleSource(RestSource):
    endpoints = {"users": Endpoint(path="cursor/users", records_path="items")}
