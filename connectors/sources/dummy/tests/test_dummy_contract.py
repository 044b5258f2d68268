"""The source contract over the dummy source (its fake API answers in-process)."""

import pytest

from bizon_core.testing.contract import SourceContract


class TestDummyContract(SourceContract):
    source = "dummy"
    cursor_field = "updated_at"
    no_faults_because = "the dummy API answers in-process (a requests adapter), not over HTTP"

    @pytest.fixture
    def source_config(self):
        return {"authentication": {"type": "api_key", "params": {"token": "dummy-api-key"}}}
