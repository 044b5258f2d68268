"""The `chaos` source: the pages of `bizon_core.testing.chaos.pages.GenerationsServer`."""

from __future__ import annotations

from requests.auth import AuthBase

from bizon_core.source.config import SourceConfig
from bizon_core.source.models import SourceIncrementalState, SourceIteration, SourceRecord
from bizon_core.source.source import AbstractSource


class ChaosSourceConfig(SourceConfig):
    base_url: str


class ChaosSource(AbstractSource):
    """Pages `{"items": [...], "next_page": N | null}` from `GET {base_url}/records?page=N`.

    Incremental: `updated_after=<last_run>` keeps the records changed after it (server-side).
    """

    def __init__(self, config: ChaosSourceConfig):
        super().__init__(config)
        self.config: ChaosSourceConfig = config

    @staticmethod
    def streams() -> list[str]:
        return ["records"]

    @staticmethod
    def get_config_class() -> type[SourceConfig]:
        return ChaosSourceConfig

    def get_authenticator(self) -> AuthBase | None:
        return None

    def check_connection(self) -> tuple[bool, str | None]:
        response = self.session.get(f"{self.config.base_url}/records", params={"page": 0})
        return response.ok, None if response.ok else f"HTTP {response.status_code}"

    def get(self, pagination: dict | None = None) -> SourceIteration:
        return self._page({}, pagination)

    def get_records_after(
        self, source_state: SourceIncrementalState, pagination: dict | None = None
    ) -> SourceIteration:
        return self._page({"updated_after": source_state.last_run.isoformat()}, pagination)

    def _page(self, params: dict[str, str], pagination: dict | None) -> SourceIteration:
        page = pagination["page"] if pagination else 0
        response = self.session.get(
            f"{self.config.base_url}/records", params={**params, "page": page}
        )
        response.raise_for_status()
        data = response.json()
        records = [SourceRecord(id=item["id"], data=item) for item in data["items"]]
        next_page = data["next_page"]
        return SourceIteration(
            records=records, next_pagination={"page": next_page} if next_page is not None else {}
        )
