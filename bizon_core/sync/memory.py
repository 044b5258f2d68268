"""Garbage collection paced by pages rather than by allocations."""

from __future__ import annotations

import gc
from types import TracebackType


class PagedCollection:
    """Within `with`, the cyclic collector runs once every `every` pages, on young objects.

    A sync allocates millions of short-lived, acyclic objects (parsed JSON, records).
    CPython's collector would run every 700 allocations and rescan the live pages each
    time, which costs more than parsing them. Reference counting frees the records
    anyway; the young collection every few pages still frees the rare cycles (of HTTP
    responses, exceptions) so memory stays bounded. The collector's previous state is
    restored on exit.
    """

    def __init__(self, every: int = 10):
        self.every = every
        self._pages = 0
        self._was_enabled = False

    def __enter__(self) -> PagedCollection:
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def page_done(self) -> None:
        """Count a page; collect the young generation every `every` pages."""
        self._pages += 1
        if self._pages % self.every == 0:
            gc.collect(0)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._was_enabled:
            gc.enable()
