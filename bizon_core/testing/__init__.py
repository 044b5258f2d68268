"""Test helpers: a local fake paginated JSON API server and a static-pages benchmark server."""

from bizon_core.testing.server import (
    FakeApi,
    FakeApiServer,
    Fault,
    RandomFaults,
    RecordedRequest,
    StaticPagesServer,
    build_bench_pages,
    make_records,
    transient_faults,
)

__all__ = [
    "FakeApi",
    "FakeApiServer",
    "Fault",
    "RandomFaults",
    "RecordedRequest",
    "StaticPagesServer",
    "build_bench_pages",
    "make_records",
    "transient_faults",
]
