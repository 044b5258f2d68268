"""The `github` source: issues, pull requests and commits of one repository.

API docs: https://docs.github.com/en/rest/issues/issues#list-repository-issues,
https://docs.github.com/en/rest/pulls/pulls#list-pull-requests,
https://docs.github.com/en/rest/commits/commits#list-commits,
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
"""

from typing import Any

import requests
from pydantic import Field

from bizon_core.source.models import SourceRecord
from bizon_core.source.pagination import LinkHeaderPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig

REPOSITORY = "repos/{owner}/{repo}"


class GithubConfig(RestSourceConfig):
    """`source:` of a github pipeline: the repository."""

    owner: str = Field(description="The repository's owner, a user or an organization.")
    repo: str = Field(description="The repository's name.")


class GithubSource(RestSource):
    """A repository's issues, pull requests and commits: a token, `Link` header pages,
    incremental by `since` (pull requests: newest first, filtered here)."""

    base_url = "https://api.github.com"
    config_class = GithubConfig
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    paginator = LinkHeaderPaginator()
    error_message_path = "message"
    endpoints = {
        "issues": Endpoint(
            path=f"{REPOSITORY}/issues",
            params={"state": "all", "sort": "updated", "direction": "asc", "per_page": 100},
            incremental=Incremental(param="since", format="iso_z", cursor_field="updated_at"),
        ),
        # The pulls API takes no `since`: sorted by update, newest first, its pages stop
        # at the first pull request older than the last run.
        "pull_requests": Endpoint(
            path=f"{REPOSITORY}/pulls",
            params={"state": "all", "sort": "updated", "direction": "desc", "per_page": 100},
            incremental=Incremental(cursor_field="updated_at", newest_first=True),
        ),
        "commits": Endpoint(
            path=f"{REPOSITORY}/commits",
            params={"per_page": 100},
            id_field="sha",
            incremental=Incremental(
                param="since",
                end_param="until",
                format="iso_z",
                cursor_field="commit.committer.date",
            ),
        ),
    }

    def parse_records(
        self, endpoint: Endpoint, response: requests.Response, body: Any
    ) -> list[SourceRecord]:
        records = super().parse_records(endpoint, response, body)
        if self.config.stream == "issues":  # the issues API lists pull requests too
            return [r for r in records if "pull_request" not in r.data]
        return records
