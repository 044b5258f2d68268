"""The hubspot source against a local server answering like HubSpot's CRM v3 API."""

from datetime import UTC, datetime

import pytest
from fake_hubspot import (
    CLIENT_ID,
    CLIENT_SECRET,
    PRIVATE_APP_TOKEN,
    REFRESH_TOKEN,
    FakeHubspot,
)

from bizon_core.errors import SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.testing.contract import ContractSubject, SourceContract

BEFORE_ALL = datetime(2025, 12, 31, tzinfo=UTC)


@pytest.fixture
def hubspot():
    with FakeHubspot() as server:
        yield server


def subject(server: FakeHubspot, token: str = PRIVATE_APP_TOKEN, **config) -> ContractSubject:
    auth = {"type": "bearer", "params": {"token": token}}
    return ContractSubject("hubspot", {"base_url": server.url, "authentication": auth, **config})


class TestHubspotContract(SourceContract):
    source = "hubspot"

    @pytest.fixture
    def source_config(self, hubspot):
        return subject(hubspot).config


def test_a_full_refresh_lists_every_object_by_paging_next_after(hubspot):
    records = subject(hubspot, properties={"deals": ["dealname", "extra"]}).read("deals")
    assert [r.id for r in records] == [d["id"] for d in hubspot.data["deals"]]
    assert [q.get("after") for _, _, q in hubspot.requests] == [None, "100"]
    assert all(q["properties"] == "dealname,extra" for _, _, q in hubspot.requests)
    assert records[0].data["properties"]["extra"] == "x1"


def test_incremental_searches_on_the_last_modified_property_oldest_first(hubspot):
    last_run = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    records = subject(hubspot).read("companies", SourceIncrementalState(last_run=last_run))
    method, path, body = hubspot.requests[0]
    assert (method, path) == ("POST", "/crm/v3/objects/companies/search")
    [[condition]] = [g["filters"] for g in body["filterGroups"]]
    assert condition == {
        "propertyName": "hs_lastmodifieddate",
        "operator": "GTE",
        "value": str(int(last_run.timestamp() * 1000)),
    }
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    updated = [r.data["updatedAt"] for r in records]
    assert updated == sorted(updated) and min(updated) >= "2026-01-01T00:05:00"
    assert len(records) == sum(
        c["updatedAt"] >= "2026-01-01T00:05:00" for c in hubspot.data["companies"]
    )


def test_past_the_10_000_results_of_a_search_it_searches_again_from_the_last_change():
    with FakeHubspot(contacts=10_450) as server:
        records = subject(server).read("contacts", SourceIncrementalState(last_run=BEFORE_ALL))
        assert {r.id for r in records} == {c["id"] for c in server.data["contacts"]}
        searches = [body for _, _, body in server.requests]
        assert max(int(b.get("after", 0)) for b in searches) == 9_800  # never past the window
        starts = {g["filters"][0]["value"] for b in searches for g in b["filterGroups"]}
        assert len(starts) == 2


def test_a_window_of_one_instant_is_a_clear_error_not_a_loop():
    with FakeHubspot(contacts=10_001) as server:
        for contact in server.data["contacts"]:
            contact["updatedAt"] = contact["properties"]["lastmodifieddate"] = (
                "2026-01-02T00:00:00.000Z"
            )
        with pytest.raises(
            SourceError, match=r"more than 10,000 contacts were modified at the same millisecond"
        ):
            subject(server).read(
                "contacts", SourceIncrementalState(last_run=datetime(2026, 1, 2, tzinfo=UTC))
            )


def test_oauth_refreshes_the_token_then_sends_it(hubspot):
    params = {
        "token_refresh_endpoint": f"{hubspot.url}/oauth/v1/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    config = {"base_url": hubspot.url, "authentication": {"type": "oauth", "params": params}}
    records = ContractSubject("hubspot", config).read("deals")
    assert len(records) == len(hubspot.data["deals"])
    del params["token_refresh_endpoint"]
    assert hubspot.token_requests == [{"grant_type": "refresh_token", **params}]
    # The fake answers only a private app's token or the refreshed access token.


def test_a_429_is_retried_at_the_default_settings(hubspot):
    hubspot.rate_limits = 1
    assert len(subject(hubspot).read("companies")) == len(hubspot.data["companies"])


def test_a_wrong_token_is_one_line_with_hubspot_s_message(hubspot):
    with pytest.raises(SourceError) as raised:
        subject(hubspot, token="pat-na1-wrong").read("contacts")
    message = "Authentication credentials not found. This API supports OAuth 2.0 authentication."
    assert str(raised.value).endswith(f"HTTP 401 Unauthorized: {message}")
