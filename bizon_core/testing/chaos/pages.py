"""`GenerationsServer`: a collection whose records change over time, served as static pages.

Generation 0 holds records 1..N; each later generation (`publish`) gives some of them a new
version and adds new ids. Every record carries `generation` and `updated_at` (the time its
generation was published), so the destination shows which version of each id it holds.

    GET /records?page=P[&updated_after=ISO]  {"items": [...], "next_page": P + 1 | null}

Without `updated_after`: the latest version of every record. With it: the records of the
generations published after it. Pages are encoded once per view, then served as bytes.
A hook (`on_page`) sees each page request before it is answered: the chaos harness kills
a run there, with the request in flight.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from bizon_core.testing.server import LocalServer, QuietHandler, make_records

#: Called with the page number of each page request, before it is answered.
PageHook = Callable[[int], None]


@dataclass(frozen=True)
class Generation:
    """One change to the collection: these ids got a new version at `published_at`."""

    number: int
    published_at: datetime
    ids: tuple[int, ...]


class Collection:
    """The records' versions, generation by generation, and the pages of each view."""

    def __init__(self, n_records: int, page_size: int = 1000) -> None:
        if n_records < 1 or page_size < 1:
            raise ValueError("n_records and page_size must be at least 1")
        self.page_size = page_size
        self.generations: list[Generation] = []
        self._views: dict[int, list[bytes]] = {}
        self._lock = threading.Lock()
        self._publish(tuple(range(1, n_records + 1)))

    @property
    def max_id(self) -> int:
        return max(max(g.ids) for g in self.generations)

    def publish(self, changed: list[int], new: int) -> Generation:
        """A new generation: a new version of `changed` ids, and `new` ids after the last."""
        first_new = self.max_id + 1
        return self._publish(tuple(sorted({*changed, *range(first_new, first_new + new)})))

    def latest(self, since: int = 0) -> dict[int, int]:
        """id -> its latest generation, over the generations numbered `since` and later."""
        versions: dict[int, int] = {}
        for generation in self.generations[since:]:
            versions.update(dict.fromkeys(generation.ids, generation.number))
        return versions

    def view_after(self, updated_after: datetime | None) -> int:
        """The first generation a request with this `updated_after` sees."""
        if updated_after is None:
            return 0
        for generation in self.generations:
            if generation.published_at > updated_after:
                return generation.number
        return len(self.generations)

    def pages(self, since: int) -> list[bytes]:
        """The encoded pages of the view starting at generation `since` (built once)."""
        with self._lock:
            if since not in self._views:
                self._views[since] = self._encode(self.latest(since))
            return self._views[since]

    def _publish(self, ids: tuple[int, ...]) -> Generation:
        with self._lock:
            now = datetime.now(UTC)
            if self.generations and now <= self.generations[-1].published_at:
                raise RuntimeError("generations must be published at increasing times")
            generation = Generation(len(self.generations), now, ids)
            self.generations.append(generation)
            self._views.clear()
            return generation

    def _encode(self, versions: dict[int, int]) -> list[bytes]:
        ids = sorted(versions)
        stamps = [g.published_at.isoformat() for g in self.generations]
        n_pages = max(1, math.ceil(len(ids) / self.page_size))
        pages = []
        for page in range(n_pages):
            chunk = ids[page * self.page_size : (page + 1) * self.page_size]
            items = []
            if chunk:
                wanted = set(chunk)
                span = make_records(chunk[-1] - chunk[0] + 1, start_id=chunk[0])
                for record in span:
                    if record["id"] in wanted:
                        generation = versions[record["id"]]
                        record["generation"] = generation
                        record["updated_at"] = stamps[generation]
                        items.append(record)
            next_page = page + 1 if page + 1 < n_pages else None
            pages.append(orjson.dumps({"items": items, "next_page": next_page}))
        return pages


class _PagesHandler(QuietHandler):
    server: GenerationsServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(parse_qsl(query))
        try:
            page = int(params.get("page", "0"))
            raw_after = params.get("updated_after", "").replace(" ", "+")
            after = datetime.fromisoformat(raw_after) if raw_after else None
        except ValueError:
            self._answer(400, b'{"error":"bad page or updated_after"}')
            return
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        collection = self.server.collection
        pages = collection.pages(collection.view_after(after))
        if path != "/records" or not 0 <= page < len(pages):
            self._answer(404, b'{"error":"no such page"}')
            return
        hook = self.server.on_page
        if hook is not None:
            hook(page)
        self._answer(200, pages[page])

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class GenerationsServer(LocalServer):
    """Serves a `Collection` on 127.0.0.1 (see the module docstring)::

    with GenerationsServer(Collection(200_000)) as server:
        ...  # sync from f"{server.url}/records"
        server.collection.publish(changed=[1, 2, 3], new=10)
    """

    def __init__(self, collection: Collection, *, port: int = 0) -> None:
        super().__init__(_PagesHandler, port)
        self.collection = collection
        self.on_page: PageHook | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request is what this server is for: no traceback for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
