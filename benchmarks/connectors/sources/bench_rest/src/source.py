"""The `bench_rest` source: the `bench` pages, read by a `RestSource`."""

from bizon_core.source.pagination import CursorPaginator
from bizon_core.source.rest import Endpoint, RestSource


class BenchRestSource(RestSource):
    """Pages `{"items": [...], "next_page": N | null}` from `GET {base_url}/bench?page=N`."""

    paginator = CursorPaginator(cursor_path="next_page", param="page")
    endpoints = {"records": Endpoint(path="bench", records_path="items", params={"page": 0})}
