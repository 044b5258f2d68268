"""The `notion` source: the pages, databases and users a Notion integration can see.

API docs: https://developers.notion.com/reference/post-search,
https://developers.notion.com/reference/get-users, https://developers.notion.com/reference/intro
(pagination), https://developers.notion.com/reference/versioning,
https://developers.notion.com/reference/status-codes
"""

from datetime import timedelta

from pydantic import Field

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, Incremental, RestSource, RestSourceConfig


def _search(kind: str) -> Endpoint:
    # Search has no time filter, only a sort: newest first, incremental runs stop paging
    # at the first result edited before the last run.
    return Endpoint(
        path="search",
        method="POST",
        records_path="results",
        params={
            "filter": {"property": "object", "value": kind},
            "sort": {"timestamp": "last_edited_time", "direction": "descending"},
            "page_size": 100,
        },
        incremental=Incremental(cursor_field="last_edited_time", newest_first=True),
    )


class NotionConfig(RestSourceConfig):
    """`source:` of a notion pipeline."""

    lookback: timedelta | None = Field(
        default=timedelta(minutes=1),
        description="How far before the last run to fetch too: Notion rounds "
        "last_edited_time down to the minute.",
    )


class NotionSource(RestSource):
    """Pages, databases and users: an integration's token, a cursor in the JSON body of
    search (a query parameter on GET users), incremental on `last_edited_time`."""

    base_url = "https://api.notion.com/v1"
    config_class = NotionConfig
    headers = {"Notion-Version": "2022-06-28"}
    paginator = CursorPaginator(
        cursor_path="next_cursor", param="start_cursor", has_more_path="has_more"
    )
    error_message_path = "message"
    endpoints = {
        "pages": _search("page"),
        "databases": _search("database"),
        "users": Endpoint(path="users", records_path="results", params={"page_size": 100}),
    }
