"""The `dummy` source: creatures and plants from a fake API that needs no network."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from requests.auth import AuthBase

from bizon_core.source.auth.builder import AuthBuilder
from bizon_core.source.config import SourceConfig
from bizon_core.source.models import SourceIncrementalState, SourceIteration, SourceRecord
from bizon_core.source.source import AbstractSource

from .fake_api import BASE_URL, DummyApiAdapter


class DummyStreams(StrEnum):
    CREATURES = "creatures"
    PLANTS = "plants"


class DummySourceConfig(SourceConfig):
    page_size: int = Field(default=10, ge=1, le=100, description="Records per page.")


class DummySource(AbstractSource):
    """A fake API of creatures and plants, for trying bizon out: cursor pagination,
    api_key or OAuth2 authentication and incremental syncs on `updated_at`."""

    def __init__(self, config: DummySourceConfig):
        super().__init__(config)
        self.config: DummySourceConfig = config

    @staticmethod
    def streams() -> list[str]:
        return [stream.value for stream in DummyStreams]

    @staticmethod
    def get_config_class() -> type[SourceConfig]:
        return DummySourceConfig

    def get_authenticator(self) -> AuthBase | None:
        return AuthBuilder.from_config(self.config.authentication)

    @property
    def session(self):
        session = super().session
        if BASE_URL not in session.adapters:
            session.mount(BASE_URL, DummyApiAdapter())
        return session

    def check_connection(self) -> tuple[bool, str | None]:
        response = self.session.get(
            f"{BASE_URL}/v1/{self.config.stream}/count", raise_for_status=False
        )
        if response.ok:
            return True, None
        return False, f"{response.status_code} {response.json().get('error')}"

    def get_total_records_count(self) -> int | None:
        response = self.session.get(f"{BASE_URL}/v1/{self.config.stream}/count")
        response.raise_for_status()
        return response.json()["count"]

    def get(self, pagination: dict | None = None) -> SourceIteration:
        return self._page({}, pagination)

    def get_records_after(
        self, source_state: SourceIncrementalState, pagination: dict | None = None
    ) -> SourceIteration:
        return self._page({"updated_after": source_state.last_run.isoformat()}, pagination)

    def _page(self, params: dict, pagination: dict | None) -> SourceIteration:
        params = {**params, "limit": self.config.page_size}
        if pagination:
            params["cursor"] = pagination["cursor"]
        response = self.session.get(f"{BASE_URL}/v1/{self.config.stream}", params=params)
        response.raise_for_status()
        data = response.json()
        records = [SourceRecord(id=item["id"], data=item) for item in data["items"]]
        next_cursor = data.get("next_cursor")
        return SourceIteration(
            records=records, next_pagination={"cursor": next_cursor} if next_cursor else {}
        )
