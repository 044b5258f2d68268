"""Paginators read real local APIs from the first page to the last, and say why they stopped."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from bizon_core import (
    CursorPaginator,
    KeysetPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    RecordError,
    SinglePagePaginator,
    SourceRecord,
    StopReason,
)
from bizon_core.testing import FakeApi, FakeApiServer, make_records

TOTAL = 250
RECORDS = make_records(TOTAL)
ALL_IDS = [str(r["id"]) for r in RECORDS]


class Handler(BaseHTTPRequestHandler):
    """`/link?page=N&per_page=L`: records in `items`, the next page in a `Link` header
    (relative, beside a `prev` link); `/keyset?starting_after=ID&limit=L`: `data`, `has_more`."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        headers: dict[str, str] = {}
        if url.path == "/link":
            page, size = int(query.get("page", 1)), int(query["per_page"])
            items = RECORDS[(page - 1) * size : page * size]
            links = [f'</link?page={page - 1}&per_page={size}>; rel="prev"'] if page > 1 else []
            if page * size < TOTAL:
                links.append(f'</link?page={page + 1}&per_page={size}>; rel="next"')
            if links:
                headers["Link"] = ", ".join(links)
            body: dict[str, Any] = {"items": items}
        else:
            after, limit = int(query.get("starting_after", 0)), int(query["limit"])
            rest = [r for r in RECORDS if r["id"] > after]
            body = {"data": rest[:limit], "has_more": len(rest) > limit}
        payload = json.dumps(body).encode()
        self.send_response(200)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake_api() -> Iterator[str]:
    with FakeApiServer(FakeApi({"users": RECORDS})) as server:
        yield server.url


@pytest.fixture(scope="module")
def own_api() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def read_all(
    paginator: Paginator,
    url: str,
    items: str = "items",
    params: dict[str, Any] | None = None,
    max_pages: int = 20,
) -> tuple[list[str], list[dict[str, Any]], StopReason | None]:
    """A source's `get()` loop as the runner drives it: ids read, paginations sent, last reason."""
    ids: list[str] = []
    sent: list[dict[str, Any]] = []
    pagination: dict[str, Any] = {}
    with requests.Session() as session:
        for _ in range(max_pages):
            sent.append(pagination)
            request_url, request_params = paginator.request(url, pagination, params)
            response = session.get(request_url, params=request_params, timeout=10)
            response.raise_for_status()
            body = response.json()
            records = [SourceRecord(id=r["id"], data=r) for r in body.get(items, [])]
            ids += [r.id for r in records]
            page = paginator.next_page(pagination, response, body, records)
            json.dumps(page.next_pagination)  # the state store keeps it as JSON
            assert (page.stop_reason is None) == bool(page.next_pagination)
            if page.done:
                return ids, sent, page.stop_reason
            pagination = page.next_pagination
    raise AssertionError(f"no end after {max_pages} pages")


def test_cursor_stops_on_a_null_token(fake_api) -> None:
    ids, sent, reason = read_all(
        CursorPaginator(), f"{fake_api}/cursor/users", params={"limit": 100}
    )
    assert ids == ALL_IDS and reason is StopReason.TOKEN_EMPTY
    assert len(sent) == 3 and set(sent[1]) == {"cursor"}


def test_cursor_stops_on_has_more_false(fake_api) -> None:
    paginator = CursorPaginator(has_more_path="has_more")
    ids, sent, reason = read_all(paginator, f"{fake_api}/records", "results", {"page_size": 100})
    assert ids == ALL_IDS and reason is StopReason.HAS_MORE_FALSE and len(sent) == 3


def test_cursor_stops_when_the_body_has_no_token(fake_api) -> None:
    ids, sent, reason = read_all(
        CursorPaginator(), f"{fake_api}/offset/users", params={"limit": 10}
    )
    assert ids == ALL_IDS[:10] and reason is StopReason.TOKEN_MISSING and len(sent) == 1


def test_cursor_token_at_a_nested_path() -> None:
    paginator = CursorPaginator(cursor_path="meta.next.0", param="after")
    page = paginator.next_page(None, requests.Response(), {"meta": {"next": ["t2"]}}, [])
    assert page.next_pagination == {"cursor": "t2"}
    assert paginator.params(page.next_pagination) == {"after": "t2"}


def test_next_url_sends_the_first_params_once(fake_api) -> None:
    ids, sent, reason = read_all(
        NextUrlPaginator(), f"{fake_api}/next_url/users", params={"limit": 100}
    )
    assert ids == ALL_IDS and reason is StopReason.TOKEN_EMPTY
    assert len(sent) == 3 and sent[1]["next_url"].startswith(f"{fake_api}/next_url/users?")


def test_link_header_follows_rel_next(own_api) -> None:
    ids, sent, reason = read_all(LinkHeaderPaginator(), f"{own_api}/link", params={"per_page": 100})
    assert ids == ALL_IDS and reason is StopReason.NO_NEXT_LINK
    # The relative link is resolved against the page that gave it; `prev` is ignored.
    assert sent[1] == {"next_url": f"{own_api}/link?page=2&per_page=100"}
    assert sent[2] == {"next_url": f"{own_api}/link?page=3&per_page=100"}


@pytest.mark.parametrize(
    ("paginator", "requests_made", "reason"),
    [
        (OffsetPaginator(limit=100), 3, StopReason.SHORT_PAGE),
        (OffsetPaginator(limit=50), 6, StopReason.EMPTY_PAGE),
        (OffsetPaginator(limit=50, total_path="total"), 5, StopReason.TOTAL_REACHED),
    ],
)
def test_offset_stop_rules(fake_api, paginator, requests_made, reason) -> None:
    ids, sent, stopped = read_all(paginator, f"{fake_api}/offset/users")
    assert ids == ALL_IDS and stopped is reason and len(sent) == requests_made
    assert [p.get("offset", 0) for p in sent] == list(
        range(0, requests_made * paginator.limit, paginator.limit)
    )


@pytest.mark.parametrize(
    ("paginator", "requests_made", "reason"),
    [
        (PageNumberPaginator(page_size=100), 3, StopReason.SHORT_PAGE),
        (PageNumberPaginator(page_size=50), 6, StopReason.EMPTY_PAGE),
        (
            PageNumberPaginator(page_size=50, total_pages_path="total_pages"),
            5,
            StopReason.TOTAL_REACHED,
        ),
    ],
)
def test_page_number_stop_rules(fake_api, paginator, requests_made, reason) -> None:
    ids, sent, stopped = read_all(paginator, f"{fake_api}/page/users")
    assert ids == ALL_IDS and stopped is reason and len(sent) == requests_made
    assert [p.get("page", 1) for p in sent] == list(range(1, requests_made + 1))


def test_page_number_counts_from_zero() -> None:
    paginator = PageNumberPaginator(page_size=2, first_page=0, total_pages_path="total_pages")
    full = [SourceRecord(id=n, data={"id": n}) for n in (1, 2)]
    body, response = {"total_pages": 2}, requests.Response()
    assert paginator.params(None) == {"page": 0, "per_page": 2}
    assert paginator.next_page(None, response, body, full).next_pagination == {"page": 1}
    assert paginator.next_page({"page": 1}, response, body, full).stop_reason is (
        StopReason.TOTAL_REACHED
    )


@pytest.mark.parametrize(
    ("paginator", "requests_made", "reason"),
    [
        (KeysetPaginator(), 3, StopReason.HAS_MORE_FALSE),
        (KeysetPaginator(has_more_path=None), 4, StopReason.EMPTY_PAGE),
    ],
)
def test_keyset_stop_rules(own_api, paginator, requests_made, reason) -> None:
    ids, sent, stopped = read_all(paginator, f"{own_api}/keyset", "data", {"limit": 100})
    assert ids == ALL_IDS and stopped is reason and len(sent) == requests_made
    assert sent[1:] == [{"starting_after": n} for n in (100, 200, 250)][: requests_made - 1]


def test_single_page(fake_api) -> None:
    ids, sent, reason = read_all(
        SinglePagePaginator(), f"{fake_api}/cursor/users", params={"limit": 500}
    )
    assert ids == ALL_IDS and reason is StopReason.SINGLE_PAGE and len(sent) == 1


def test_a_keyset_record_without_its_id_field_is_a_record_error():
    records = [SourceRecord(id="7", data={"name": "x"})]
    with pytest.raises(RecordError, match=r"record 7: no field 'uid' to page after"):
        KeysetPaginator(id_field="uid").next_page(None, requests.Response(), {}, records)
