"""The stripe source against a local server answering like Stripe's list endpoints."""

from datetime import UTC, datetime

import pytest
from fake_stripe import DELETED_CUSTOMER, SECRET_KEY, FakeStripe

from bizon_core.errors import SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.sync.state import TimeWindow
from bizon_core.testing.contract import ContractSubject, SourceContract


@pytest.fixture
def stripe():
    with FakeStripe() as server:
        yield server


def subject(server: FakeStripe, key: str = SECRET_KEY, **config) -> ContractSubject:
    auth = {"type": "bearer", "params": {"token": key}}
    return ContractSubject(
        "stripe", {"base_url": f"{server.url}/v1", "authentication": auth, **config}
    )


class TestStripeContract(SourceContract):
    source = "stripe"

    @pytest.fixture
    def source_config(self, stripe):
        return {
            "base_url": f"{stripe.url}/v1",
            "authentication": {"type": "bearer", "params": {"token": SECRET_KEY}},
        }


def test_customers_page_by_starting_after_until_has_more_is_false(stripe):
    records = subject(stripe).read("customers")
    assert [r.id for r in records] == [c["id"] for c in stripe.data["customers"]]
    sent = [q.get("starting_after") for _, q in stripe.requests]
    assert sent == [None, [records[99].id], [records[199].id]]  # 229 customers, 100 a page


def test_incremental_sends_created_gte_as_epoch_seconds(stripe):
    last_run = datetime(2026, 1, 3, 12, tzinfo=UTC)
    records = subject(stripe).read("charges", SourceIncrementalState(last_run=last_run))
    assert stripe.requests[0][1]["created[gte]"] == [str(int(last_run.timestamp()))]
    expected = [c["id"] for c in stripe.data["charges"] if c["created"] >= last_run.timestamp()]
    assert [r.id for r in records] == expected and 0 < len(expected) < len(stripe.data["charges"])


def test_expand_asks_for_data_fields_and_gets_objects_even_for_a_deleted_customer(stripe):
    records = subject(stripe, expand={"charges": ["customer"]}).read("charges")
    assert all(q["expand[]"] == ["data.customer"] for _, q in stripe.requests)
    customers = {r.data["customer"]["id"]: r.data["customer"] for r in records}
    assert customers["cus_0010"]["email"] == "c10@example.com"
    assert customers[DELETED_CUSTOMER] == {
        "id": DELETED_CUSTOMER,
        "object": "customer",
        "deleted": True,
    }
    plain = subject(stripe).read("charges")
    assert all(isinstance(r.data["customer"], str) for r in plain)


def test_expand_names_only_the_streams_there_are(stripe):
    with pytest.raises(
        Exception, match=r"unknown stream charge \(streams: customers, charges, invoices\)"
    ):
        subject(stripe, expand={"charge": ["customer"]}).stream_config("charges")


def test_a_rate_limited_request_is_retried_at_the_default_settings(stripe):
    stripe.rate_limits = 2
    assert len(subject(stripe).read("invoices")) == len(stripe.data["invoices"])
    assert len(stripe.requests) == 2 + 2


def test_a_wrong_key_is_one_line_with_stripe_s_message_and_the_key_not_shown(stripe):
    with pytest.raises(SourceError) as raised:
        subject(stripe, key="sk_test_wrongwrongwrong9876").read("customers")
    message = str(raised.value)
    assert message.endswith(
        "HTTP 401 Unauthorized: Invalid API Key provided: sk_test_********9876"
    ), message
    assert "\n" not in message and "wrongwrong" not in message


def test_a_time_partition_asks_for_created_gte_and_lt(stripe):
    start, end = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    day = TimeWindow("2026-01-02", start, end)
    ids = [r.id for r in subject(stripe).read("charges", window=day)]
    query = stripe.requests[0][1]
    assert query["created[gte]"] == [str(int(start.timestamp()) - 1)]
    assert query["created[lt]"] == [str(int(end.timestamp()))]
    window = [
        c["id"]
        for c in stripe.data["charges"]
        if start.timestamp() <= c["created"] < end.timestamp()
    ]
    assert ids == window and len(ids) == 48
