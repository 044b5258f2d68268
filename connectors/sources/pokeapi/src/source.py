"""The `pokeapi` source: Pokémon, berries and items of PokeAPI (https://pokeapi.co/docs/v2)."""

from bizon_core.source.pagination import NextUrlPaginator
from bizon_core.source.rest import Endpoint, RestSource


def _list(resource: str) -> Endpoint:
    # A named resource list: {"count", "next", "previous", "results": [{"name", "url"}]}.
    return Endpoint(path=resource, records_path="results", id_field="name", params={"limit": 100})


class PokeApiSource(RestSource):
    """Pokémon, berries and items of the public PokeAPI: no auth, next-URL pages, full refresh."""

    base_url = "https://pokeapi.co/api/v2"
    paginator = NextUrlPaginator(next_url_path="next")
    endpoints = {"pokemon": _list("pokemon"), "berry": _list("berry"), "item": _list("item")}
