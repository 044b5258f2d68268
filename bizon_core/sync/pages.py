"""Page iteration: call the source until `next_pagination == {}`, optionally one page ahead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from pydantic import ValidationError

from bizon_core.errors import BizonError, HttpError, PaginationLoopError, RecordError, SourceError
from bizon_core.secrets import redact
from bizon_core.source.models import SourceIteration

FetchPage = Callable[[dict[str, Any] | None], SourceIteration]


@dataclass(frozen=True)
class Page:
    """One fetched page: its number in this run, its records, and where the next one starts."""

    number: int
    iteration: SourceIteration

    @property
    def next_pagination(self) -> dict[str, Any]:
        return self.iteration.next_pagination


def iterate_pages(
    fetch: FetchPage, start: dict[str, Any] | None, label: str, first_number: int = 1
) -> Iterator[Page]:
    """Yield pages from `fetch(pagination)` until it returns `next_pagination == {}`.

    A `next_pagination` already seen in this run raises `PaginationLoopError` before the
    page that returned it is yielded: that page is never written, so no checkpoint can
    point back at a page already written. Any error of the source is raised as a
    `SourceError` naming `label` and the page.
    """
    pagination = start or None
    seen = {_pagination_key(pagination)} if pagination else set()
    number = first_number
    while True:
        iteration = _fetch_one(fetch, pagination, label, number)
        next_pagination = iteration.next_pagination
        if not next_pagination:
            yield Page(number, iteration)
            return
        key = _pagination_key(next_pagination)
        if key in seen:
            raise PaginationLoopError(
                f"{label}: page {number} returned next_pagination {redact(key)}, which this run "
                "already fetched; the source's pagination loops"
            )
        seen.add(key)
        yield Page(number, iteration)
        pagination = next_pagination
        number += 1


def prefetched(pages: Iterator[Page], depth: int = 1) -> Iterator[Page]:
    """Iterate `pages` in a background thread, at most `depth` pages ahead of the consumer.

    The source is then only ever called from that thread; memory stays bounded by
    `depth + 1` pages. Errors of the producer are raised in the consumer.
    """
    buffer: queue.Queue[Page | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        end = _End(None)
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        buffer.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed over to the consumer thread
            end = _End(exc)
        while not stop.is_set():
            try:
                buffer.put(end, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="bizon-fetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass(frozen=True)
class _End:
    error: BaseException | None


def _fetch_one(
    fetch: FetchPage, pagination: dict[str, Any] | None, label: str, number: int
) -> SourceIteration:
    where = f"{label}: page {number}"
    try:
        iteration = fetch(pagination)
    except HttpError as exc:
        raise exc.within(where) from exc
    except BizonError:
        raise
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in error["loc"]) or "record"
        if error["loc"] and error["loc"][-1] == "id":
            raise RecordError(f"{where}: a record has no id ({error['msg']})") from exc
        raise RecordError(f"{where}: invalid record field {field}: {error['msg']}") from exc
    except requests.exceptions.JSONDecodeError as exc:
        raise SourceError(f"{where}: the API answered with something that is not JSON") from exc
    except Exception as exc:
        raise SourceError(redact(f"{where}: {type(exc).__name__}: {exc}")) from exc
    if not isinstance(iteration, SourceIteration):
        raise SourceError(f"{where}: expected a SourceIteration, got {type(iteration).__name__}")
    return iteration


def _pagination_key(pagination: dict[str, Any]) -> str:
    try:
        return orjson.dumps(pagination, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(sorted(pagination.items(), key=lambda item: str(item[0])))
