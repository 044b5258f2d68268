"""The gbif source against a local server answering like GBIF's occurrence search."""

from datetime import UTC, datetime

import pytest
from fake_gbif import FakeGbif, occurrences

from bizon_core.errors import SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.testing.contract import ContractSubject, SourceContract


@pytest.fixture
def gbif():
    with FakeGbif() as server:
        yield server


def subject(server: FakeGbif, **query) -> ContractSubject:
    return ContractSubject("gbif", {"base_url": f"{server.url}/v1", "query": query})


class TestGbifContract(SourceContract):
    source = "gbif"

    @pytest.fixture
    def source_config(self, gbif):
        return {"base_url": f"{gbif.url}/v1"}


def test_the_query_is_sent_and_pages_of_300_run_to_end_of_records(gbif):
    records = subject(gbif, country=["DK", "SE"], year="2020,*").read("occurrence")
    expected = [o for o in gbif.records if o["countryCode"] in ("DK", "SE") and o["year"] >= 2020]
    assert [r.id for r in records] == [str(o["key"]) for o in expected]
    assert [q["offset"] for q in gbif.queries] == [["0"], ["300"]]
    assert all(q["country"] == ["DK", "SE"] and q["limit"] == ["300"] for q in gbif.queries)


def test_incremental_asks_gbif_for_the_day_and_keeps_only_what_is_newer(gbif):
    last_run = datetime(2026, 3, 20, 12, 30, tzinfo=UTC)
    state = SourceIncrementalState(last_run=last_run, cursor_field="lastInterpreted")
    records = subject(gbif, taxonKey=212).read("occurrence", state)
    assert gbif.queries[0]["lastInterpreted"] == ["2026-03-20,*"]
    expected = [
        o["key"]
        for o in gbif.records
        if o["classKey"] == 212 and datetime.fromisoformat(o["lastInterpreted"]) > last_run
    ]
    assert [int(r.id) for r in records] == expected


def test_a_query_beyond_the_search_window_fails_before_loading_anything():
    with FakeGbif(occurrences(100_001)) as server:
        with pytest.raises(SourceError, match=r"matches 100,001 occurrences.*narrow source\.query"):
            subject(server).read("occurrence")
        assert len(server.queries) == 1


def test_a_bad_filter_value_is_one_line_with_gbif_s_reason(gbif):
    with pytest.raises(SourceError) as raised:
        subject(gbif, country="Denmark").read("occurrence")
    assert "HTTP 400" in str(raised.value) and "Invalid country code: Denmark" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_full_last_page_stops_on_end_of_records_without_asking_again():
    with FakeGbif(occurrences(600)) as server:
        assert len(subject(server).read("occurrence")) == 600
        assert [q["offset"] for q in server.queries] == [["0"], ["300"]]
