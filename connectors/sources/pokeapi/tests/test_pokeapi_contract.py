"""The pokeapi source against a local server answering like PokeAPI's lists."""

import pytest
from fake_pokeapi import RESOURCES, FakePokeApi

from bizon_core.errors import SourceError
from bizon_core.testing.contract import ContractSubject, SourceContract


@pytest.fixture
def pokeapi():
    with FakePokeApi() as server:
        yield server


class TestPokeApiContract(SourceContract):
    source = "pokeapi"

    @pytest.fixture
    def source_config(self, pokeapi):
        return {"base_url": f"{pokeapi.url}/api/v2"}


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_every_name_is_read_by_following_next(pokeapi, resource):
    subject = ContractSubject("pokeapi", {"base_url": f"{pokeapi.url}/api/v2"})
    records = subject.read(resource)
    assert [r.id for r in records] == RESOURCES[resource]
    assert records[0].data["url"].endswith(f"/api/v2/{resource}/1/")
    pages = -(-len(RESOURCES[resource]) // 100)
    assert len(pokeapi.paths) == pages


def test_an_unknown_resource_is_one_clear_error(pokeapi):
    subject = ContractSubject("pokeapi", {"base_url": f"{pokeapi.url}/api/v1"})
    with pytest.raises(SourceError, match=r"404"):
        subject.read("pokemon")
