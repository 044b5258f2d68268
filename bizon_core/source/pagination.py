"""Paginators: small strategies that turn a page's answer into the seed's `next_pagination`.

A paginator is stateless: everything it needs to go on is in the `next_pagination` dict it
returns (`{}` when done), so a run can resume from any page. It tells a source's `get()`
what the next request needs, and why it stopped::

    def get(self, pagination=None):
        url, params = self.paginator.request(self.url, pagination, {"limit": 100})
        response = self.session.get(url, params=params)
        body = response.json()
        records = [SourceRecord(id=r["id"], data=r) for r in body["items"]]
        page = self.paginator.next_page(pagination, response, body, records)
        return SourceIteration(records=records, next_pagination=page.next_pagination)

`page.stop_reason` (a `StopReason`, None while there are more pages) says why it stopped.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urljoin

import requests
from pydantic import BaseModel, ConfigDict, Field

from bizon_core.errors import RecordError
from bizon_core.source.models import SourceRecord

logger = logging.getLogger(__name__)

Pagination = dict[str, Any]


class StopReason(StrEnum):
    """Why a paginator returned `{}`."""

    EMPTY_PAGE = "empty page"
    SHORT_PAGE = "short page"
    TOTAL_REACHED = "total reached"
    END_OF_RECORDS = "end of records"
    HAS_MORE_FALSE = "has_more false"
    TOKEN_MISSING = "token missing"
    TOKEN_EMPTY = "token null or empty"
    NO_NEXT_LINK = "no next link"
    SINGLE_PAGE = "single page"


@dataclass(frozen=True)
class PageDecision:
    """A paginator's decision: the `next_pagination` to return, and why it is `{}` if it is."""

    next_pagination: Pagination
    stop_reason: StopReason | None = None

    @classmethod
    def stop(cls, reason: StopReason) -> PageDecision:
        return cls({}, reason)

    @property
    def done(self) -> bool:
        return not self.next_pagination


#: What `json_path` returns when the path is absent (a JSON `null` is None).
MISSING = object()


def json_path(body: Any, path: str) -> Any:
    """The value at a dotted `path` of a JSON body (`"meta.next"`, `"pages.0.url"`), or
    `MISSING` if a key or index along it is absent."""
    value = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


class Paginator(BaseModel, ABC):
    """Base of the paginators: `request` builds the next request, `next_page` decides.

    Paginators are frozen pydantic models, so a declarative config (`{type: cursor,
    cursor_path: meta.next}`) builds the same objects as Python code does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def params(self, pagination: Pagination | None) -> dict[str, Any]:
        """The query parameters a request for `pagination` (None or `{}`: the first page) adds."""
        return {}

    def request(
        self, url: str, pagination: Pagination | None, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The URL and query parameters of the request for `pagination`, given those of the
        first page."""
        return url, {**(params or {}), **self.params(pagination)}

    def next_page(
        self,
        pagination: Pagination | None,
        response: requests.Response,
        body: Any,
        records: list[SourceRecord],
    ) -> PageDecision:
        """The decision after the page fetched with `pagination`: `response`, its parsed
        `body` and the page's `records`."""
        page = self._decide(pagination or {}, response, body, records)
        if page.done:
            logger.debug("%s stopped: %s", type(self).__name__, page.stop_reason)
        return page

    @abstractmethod
    def _decide(
        self,
        pagination: Pagination,
        response: requests.Response,
        body: Any,
        records: list[SourceRecord],
    ) -> PageDecision: ...


def _has_more_false(body: Any, has_more_path: str | None) -> bool:
    return has_more_path is not None and json_path(body, has_more_path) is False


class SinglePagePaginator(Paginator):
    """One request is all there is."""

    type: Literal["single_page"] = "single_page"

    def _decide(self, pagination, response, body, records) -> PageDecision:
        return PageDecision.stop(StopReason.SINGLE_PAGE)


class CursorPaginator(Paginator):
    """A token in the body (at `cursor_path`) sent back as the query parameter `param`.

    Stops when the token is missing, null or empty, or, given `has_more_path`, when the
    body says `false` there.
    """

    type: Literal["cursor"] = "cursor"

    cursor_path: str = "next_cursor"
    param: str = "cursor"
    has_more_path: str | None = None

    def params(self, pagination: Pagination | None) -> dict[str, Any]:
        return {self.param: pagination["cursor"]} if pagination else {}

    def _decide(self, pagination, response, body, records) -> PageDecision:
        if _has_more_false(body, self.has_more_path):
            return PageDecision.stop(StopReason.HAS_MORE_FALSE)
        token = json_path(body, self.cursor_path)
        if token is MISSING:
            return PageDecision.stop(StopReason.TOKEN_MISSING)
        if token is None or token == "":
            return PageDecision.stop(StopReason.TOKEN_EMPTY)
        return PageDecision({"cursor": token})


class _UrlPaginator(Paginator):
    """Follows a full URL: the first page's parameters are already in it."""

    def request(
        self, url: str, pagination: Pagination | None, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        if pagination:
            return pagination["next_url"], {}
        return url, dict(params or {})

    @staticmethod
    def _follow(response: requests.Response, next_url: str) -> PageDecision:
        # A relative link is relative to the page that gave it.
        return PageDecision({"next_url": urljoin(response.url, next_url)})


class NextUrlPaginator(_UrlPaginator):
    """The next page's URL in the body at `next_url_path`; stops when it is missing, null
    or empty."""

    type: Literal["next_url"] = "next_url"

    next_url_path: str = "next"

    def _decide(self, pagination, response, body, records) -> PageDecision:
        next_url = json_path(body, self.next_url_path)
        if next_url is MISSING:
            return PageDecision.stop(StopReason.TOKEN_MISSING)
        if not next_url:
            return PageDecision.stop(StopReason.TOKEN_EMPTY)
        return self._follow(response, next_url)


class LinkHeaderPaginator(_UrlPaginator):
    """The next page's URL in the RFC 5988 `Link` header (`rel="next"`); stops without one."""

    type: Literal["link_header"] = "link_header"

    rel: str = "next"

    def _decide(self, pagination, response, body, records) -> PageDecision:
        next_url = response.links.get(self.rel, {}).get("url")
        if not next_url:
            return PageDecision.stop(StopReason.NO_NEXT_LINK)
        return self._follow(response, next_url)


def _short_page(records: list[SourceRecord], size: int) -> StopReason | None:
    if not records:
        return StopReason.EMPTY_PAGE
    if len(records) < size:
        return StopReason.SHORT_PAGE
    return None


def _total(body: Any, path: str | None) -> int | None:
    value = None if path is None else json_path(body, path)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OffsetPaginator(Paginator):
    """`offset_param` and `limit_param` query parameters, `limit` records a page.

    Stops on an empty page, a page shorter than `limit`, given `total_path` when the
    offset reaches the total the body gives there, and given `end_path` when the body says
    `true` there (GBIF's `endOfRecords`).
    """

    type: Literal["offset"] = "offset"

    limit: int = Field(default=100, ge=1)
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None
    end_path: str | None = None

    def params(self, pagination: Pagination | None) -> dict[str, Any]:
        offset = (pagination or {}).get("offset", 0)
        return {self.offset_param: offset, self.limit_param: self.limit}

    def _decide(self, pagination, response, body, records) -> PageDecision:
        if self.end_path is not None and json_path(body, self.end_path) is True:
            return PageDecision.stop(StopReason.END_OF_RECORDS)
        if reason := _short_page(records, self.limit):
            return PageDecision.stop(reason)
        offset = pagination.get("offset", 0) + len(records)
        total = _total(body, self.total_path)
        if total is not None and offset >= total:
            return PageDecision.stop(StopReason.TOTAL_REACHED)
        return PageDecision({"offset": offset})


class PageNumberPaginator(Paginator):
    """`page_param` and `size_param` query parameters, pages counted from `first_page`.

    Stops on an empty page, a page shorter than `page_size`, or, given `total_pages_path`,
    on the last page of the count the body gives there.
    """

    type: Literal["page_number"] = "page_number"

    page_size: int = Field(default=100, ge=1)
    page_param: str = "page"
    size_param: str = "per_page"
    first_page: int = 1
    total_pages_path: str | None = None

    def params(self, pagination: Pagination | None) -> dict[str, Any]:
        page = (pagination or {}).get("page", self.first_page)
        return {self.page_param: page, self.size_param: self.page_size}

    def _decide(self, pagination, response, body, records) -> PageDecision:
        if reason := _short_page(records, self.page_size):
            return PageDecision.stop(reason)
        page = pagination.get("page", self.first_page)
        total_pages = _total(body, self.total_pages_path)
        if total_pages is not None and page - self.first_page + 1 >= total_pages:
            return PageDecision.stop(StopReason.TOTAL_REACHED)
        return PageDecision({"page": page + 1})


class KeysetPaginator(Paginator):
    """The last record's `id_field` sent as `param` (Stripe's `starting_after`).

    Stops on an empty page or, given `has_more_path`, when the body says `false` there.
    """

    type: Literal["keyset"] = "keyset"

    id_field: str = "id"
    param: str = "starting_after"
    has_more_path: str | None = "has_more"

    def params(self, pagination: Pagination | None) -> dict[str, Any]:
        return {self.param: pagination[self.param]} if pagination else {}

    def _decide(self, pagination, response, body, records) -> PageDecision:
        if not records:
            return PageDecision.stop(StopReason.EMPTY_PAGE)
        if _has_more_false(body, self.has_more_path):
            return PageDecision.stop(StopReason.HAS_MORE_FALSE)
        last = records[-1]
        if self.id_field not in last.data:
            raise RecordError(
                f"record {last.id}: no field '{self.id_field}' to page after "
                f"(KeysetPaginator id_field)"
            )
        return PageDecision({self.param: last.data[self.id_field]})


#: Any of the paginators above, chosen by its `type` (for configs).
PaginatorConfig = Annotated[
    SinglePagePaginator
    | CursorPaginator
    | NextUrlPaginator
    | LinkHeaderPaginator
    | OffsetPaginator
    | PageNumberPaginator
    | KeysetPaginator,
    Field(discriminator="type"),
]
