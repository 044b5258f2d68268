"""The notion source against a local server answering like Notion's API."""

from datetime import UTC, datetime

import pytest
import yaml
from fake_notion import TOKEN, VERSION, FakeNotion, _time

from bizon_core.cli import main
from bizon_core.errors import SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.testing.contract import ContractSubject, SourceContract


@pytest.fixture
def notion():
    with FakeNotion() as server:
        yield server


def config(server: FakeNotion, token: str = TOKEN) -> dict:
    return {
        "base_url": f"{server.url}/v1",
        "authentication": {"type": "bearer", "params": {"token": token}},
    }


class TestNotionContract(SourceContract):
    source = "notion"

    @pytest.fixture
    def source_config(self, notion):
        return config(notion)


def test_search_sends_its_cursor_in_the_json_body_and_reads_every_page(notion):
    records = ContractSubject("notion", config(notion)).read("pages")
    assert sorted(r.id for r in records) == sorted(p["id"] for p in notion.data["page"])
    methods, _, queries, bodies = zip(*notion.requests, strict=True)
    assert methods == ("POST",) * 3 and queries == ({},) * 3  # 230 pages, 100 a request
    assert "start_cursor" not in bodies[0]
    assert [b["start_cursor"] for b in bodies[1:]] == [records[100].id, records[200].id]
    assert all(b["filter"] == {"property": "object", "value": "page"} for b in bodies)


def test_users_page_with_the_cursor_as_a_query_parameter(notion):
    records = ContractSubject("notion", config(notion)).read("users")
    assert len(records) == len(notion.data["users"])
    assert [q.get("start_cursor") for _, _, q, _ in notion.requests] == [None, records[100].id]


def test_incremental_stops_at_the_first_page_edited_before_the_last_run(notion):
    edits = sorted((p["last_edited_time"] for p in notion.data["page"]), reverse=True)
    last_run = datetime.fromisoformat(edits[60])
    state = SourceIncrementalState(last_run=last_run)
    records = ContractSubject("notion", config(notion)).read("pages", state)
    assert sorted(r.data["last_edited_time"] for r in records) == sorted(edits[:60])
    assert len(notion.requests) == 1  # not the two pages older results fill


def test_an_edit_in_the_minute_of_the_last_run_is_not_lost(notion, tmp_path, monkeypatch):
    # Notion rounds last_edited_time down to the minute: the default lookback covers it.
    monkeypatch.chdir(tmp_path)
    pipeline = {
        "name": "notion_pages",
        "source": {
            "name": "notion",
            "stream": "pages",
            "sync_mode": "incremental",
            **config(notion),
        },
        "destination": {"name": "file", "config": {"path": "out/{stream}.jsonl"}},
    }
    (tmp_path / "p.yml").write_text(yaml.safe_dump(pipeline))
    assert main(["run", "p.yml"]) == 0
    edited = notion.data["page"][7]
    edited["last_edited_time"] = _time(datetime.now(UTC))  # after the run, in its minute
    assert main(["run", "p.yml"]) == 0
    loaded = (tmp_path / "out" / "pages.jsonl").read_text().splitlines()
    assert sum(edited["id"] in line for line in loaded) == 2


def test_a_rate_limit_answer_waits_retry_after_at_the_default_settings(notion):
    notion.rate_limits = 1
    assert len(ContractSubject("notion", config(notion)).read("databases")) == 12
    assert len(notion.requests) == 2


def test_a_wrong_token_is_one_line_with_notion_s_message(notion):
    with pytest.raises(SourceError) as raised:
        ContractSubject("notion", config(notion, token="secret_wrong")).read("users")
    assert str(raised.value).endswith("HTTP 401 Unauthorized: API token is invalid.")


def test_the_version_header_is_sent(notion):
    ContractSubject("notion", config(notion)).read("databases")
    assert notion.versions == {VERSION}
