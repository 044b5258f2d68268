"""The github source against a local server answering like GitHub's REST API."""

import time
from datetime import UTC, datetime

import pytest
from fake_github import OWNER, REPO, TOKEN, FakeGithub

from bizon_core.errors import SourceError
from bizon_core.source.models import SourceIncrementalState
from bizon_core.sync.state import TimeWindow
from bizon_core.testing.contract import ContractSubject, SourceContract


@pytest.fixture
def github():
    with FakeGithub() as server:
        yield server


def config(server: FakeGithub, token: str = TOKEN, repo: str = REPO) -> dict:
    auth = {"type": "bearer", "params": {"token": token}}
    return {"base_url": server.url, "owner": OWNER, "repo": repo, "authentication": auth}


def read(server: FakeGithub, stream: str, last_run: datetime | None = None, **kwargs) -> list:
    state = None if last_run is None else SourceIncrementalState(last_run=last_run)
    subject = ContractSubject("github", config(server, **kwargs))
    return subject.read(stream, state)


class TestGithubContract(SourceContract):
    source = "github"

    @pytest.fixture
    def source_config(self, github):
        return config(github)


def test_issues_follow_the_link_header_with_the_token_and_leave_out_pull_requests(github):
    records = read(github, "issues")
    issues = [i for i in github.data["issues"] if "pull_request" not in i]
    assert sorted(r.data["number"] for r in records) == [i["number"] for i in issues]
    _, queries, headers = zip(*github.requests, strict=True)
    assert [q.get("page") for q in queries] == [None, "2", "3"]  # 250 items, 100 a page
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for h in headers)
    assert all(h["X-GitHub-Api-Version"] == "2022-11-28" for h in headers)


def test_incremental_issues_and_commits_send_since(github):
    last_run = datetime(2026, 1, 5, 12, tzinfo=UTC)
    issues = read(github, "issues", last_run)
    assert github.requests[0][1]["since"] == "2026-01-05T12:00:00Z"
    assert issues and all(r.data["updated_at"] > "2026-01-05T12:00:00Z" for r in issues)
    commits = read(github, "commits", last_run)
    assert github.requests[-1][1]["since"] == "2026-01-05T12:00:00Z"
    expected = [
        c["sha"]
        for c in github.data["commits"]
        if c["commit"]["committer"]["date"] > "2026-01-05T12"
    ]
    assert [r.id for r in commits] == expected


def test_incremental_pull_requests_stop_at_the_first_older_one(github):
    # 125 pull requests, updated one an hour apart in some order: the newest 40 are newer.
    updates = sorted((p["updated_at"] for p in github.data["pulls"]), reverse=True)
    last_run = datetime.fromisoformat(updates[40])
    records = read(github, "pull_requests", last_run)
    assert sorted(r.data["updated_at"] for r in records) == sorted(updates[:40])
    assert [q.get("page") for _, q, _ in github.requests] == [None]  # not page 2 of 2
    assert "since" not in github.requests[0][1]


@pytest.mark.parametrize("kind", ["secondary", "primary"])
def test_a_rate_limit_answer_is_waited_out_at_the_default_settings(github, kind):
    github.rate_limit(kind)
    started = time.monotonic()
    records = read(github, "commits")
    assert len(records) == len(github.data["commits"])
    assert time.monotonic() - started >= 0.5  # retry-after 1 s, or the reset a second on


def test_bad_credentials_are_one_line_with_github_s_message(github):
    with pytest.raises(SourceError) as raised:
        read(github, "issues", token="ghp_wrong")
    message = str(raised.value)
    assert message.endswith("HTTP 401 Unauthorized: Bad credentials"), message
    assert "ghp_wrong" not in message and TOKEN not in message


def test_an_unknown_repository_names_the_request_and_not_found(github):
    with pytest.raises(
        SourceError, match=r"GET .*/repos/acme/nope/issues: HTTP 404 Not Found: Not Found$"
    ):
        read(github, "issues", repo="nope")


def test_a_time_partition_of_commits_asks_for_since_and_until(github):
    start, end = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    day = TimeWindow("2026-01-02", start, end)
    shas = [r.id for r in ContractSubject("github", config(github)).read("commits", window=day)]
    query = github.requests[0][1]
    assert (query["since"], query["until"]) == ("2026-01-01T23:59:59Z", "2026-01-03T00:00:00Z")
    committed = [(c["sha"], c["commit"]["committer"]["date"]) for c in github.data["commits"]]
    assert shas == [sha for sha, at in committed if "2026-01-02T" <= at < "2026-01-03T"]
    assert len(shas) == 24
