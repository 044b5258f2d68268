"""Test helpers: a local fake paginated JSON API server and a static-pages benchmark server.

The names are imported from `bizon_core.testing.server` on first use, so that
`python -m bizon_core.testing.server` does not import that module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bizon_core.testing.server import (
        FakeApi,
        FakeApiServer,
        Fault,
        RecordedRequest,
        StaticPagesServer,
        build_bench_pages,
        make_records,
    )

__all__ = [
    "FakeApi",
    "FakeApiServer",
    "Fault",
    "RecordedRequest",
    "StaticPagesServer",
    "build_bench_pages",
    "make_records",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bizon_core.testing import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
