"""The source contract over the rest_api example, against the local demo API."""

from pathlib import Path

import pytest

from bizon_core.testing import FakeApiServer
from bizon_core.testing.contract import SourceContract
from bizon_core.testing.server import demo_api
from bizon_core.yamlfile import read_yaml

EXAMPLE = Path(__file__).parents[1] / "config" / "rest_api.example.yml"
TOKEN = "contract-t0ken"


class TestRestApiContract(SourceContract):
    source = "rest_api"
    streams = ["users", "orders", "user_orders"]

    @pytest.fixture
    def source_config(self):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with FakeApiServer(demo_api(), required_headers=headers) as server:
            section = dict(read_yaml(EXAMPLE)["source"])
            del section["name"], section["streams"]
            section["base_url"] = server.url
            section["authentication"]["params"]["token"] = TOKEN
            yield section
