"""Breaks 'survives-faults': requests the API with bare `requests`, not `self.session`."""

import requests

from bizon_core.source.models import SourceIteration, SourceRecord
from bizon_core.source.rest import Endpoint, RestSource


class NoRetrySource(RestSource):
    endpoints = {"users": Endpoint(path="offset/users", records_path="items")}

    def get(self, pagination=None):
        response = requests.get(f"{self.api_base_url()}/offset/users", timeout=10)
        response.raise_for_status()
        items = response.json()["items"]
        return SourceIteration(records=[SourceRecord(id=i["id"], data=i) for i in items])
