"""The `bench` source: reads the pre-generated pages of the benchmark server."""

from __future__ import annotations

from requests.auth import AuthBase

from bizon_core.source.config import SourceConfig
from bizon_core.source.models import SourceIteration, SourceRecord
from bizon_core.source.source import AbstractSource


class BenchSourceConfig(SourceConfig):
    base_url: str


class BenchSource(AbstractSource):
    """Pages `{"items": [...], "next_page": N | null}` from `GET {base_url}/bench?page=N`."""

    def __init__(self, config: BenchSourceConfig):
        super().__init__(config)
        self.config: BenchSourceConfig = config

    @staticmethod
    def streams() -> list[str]:
        return ["records"]

    @staticmethod
    def get_config_class() -> type[SourceConfig]:
        return BenchSourceConfig

    def get_authenticator(self) -> AuthBase | None:
        return None

    def check_connection(self) -> tuple[bool, str | None]:
        return self.session.get(f"{self.config.base_url}/bench", params={"page": 0}).ok, None

    def get(self, pagination: dict | None = None) -> SourceIteration:
        page = pagination["page"] if pagination else 0
        response = self.session.get(f"{self.config.base_url}/bench", params={"page": page})
        response.raise_for_status()
        data = response.json()
        records = [SourceRecord(id=item["id"], data=item) for item in data["items"]]
        next_page = data["next_page"]
        return SourceIteration(
            records=records, next_pagination={"page": next_page} if next_page is not None else {}
        )
