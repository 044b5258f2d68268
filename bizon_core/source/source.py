"""`AbstractSource`: the contract every source connector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from requests.auth import AuthBase

from bizon_core.source.config import SourceConfig
from bizon_core.source.incremental import records_between
from bizon_core.source.models import SourceIncrementalState, SourceIteration
from bizon_core.source.session import build_session


class AbstractSource(ABC):
    """Base class of sources: list streams, authenticate, check, and fetch pages.

    `get(pagination)` returns one page of records and the pagination of the next page;
    an empty `next_pagination` (`{}`) ends the stream. Incremental sources also implement
    `get_records_after(source_state, pagination)`.

    Example::

        class MySource(AbstractSource):
            @staticmethod
            def streams() -> list[str]:
                return ["users"]
            ...
            def get(self, pagination: dict | None = None) -> SourceIteration:
                data = self.session.get(URL, params=pagination or {}).json()
                records = [SourceRecord(id=r["id"], data=r) for r in data["items"]]
                nxt = {"cursor": data["next"]} if data.get("next") else {}
                return SourceIteration(records=records, next_pagination=nxt)
    """

    def __init__(self, config: SourceConfig):
        self.config = config
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        """An HTTP session with this source's authenticator, a timeout and retries."""
        if self._session is None:
            self._session = build_session(auth=self.get_authenticator(), settings=self.config.http)
        return self._session

    @staticmethod
    @abstractmethod
    def streams() -> list[str]:
        """Names of the streams this source can sync."""

    @staticmethod
    @abstractmethod
    def get_config_class() -> type[SourceConfig]:
        """The `SourceConfig` subclass that validates this source's config."""

    @classmethod
    def available_streams(cls, source: Mapping[str, Any]) -> list[str] | None:
        """The streams a pipeline may name, given its `source:` section as written.

        `streams()` for most sources; a source whose streams are declared in its config
        (like `rest_api`) reads them there, or returns None to let its config class
        report what is missing.
        """
        return list(cls.streams())

    @classmethod
    def default_cursor_field(cls, config: SourceConfig) -> str | None:
        """The stream's cursor field when the pipeline names none (a `RestSource`: its
        endpoint's `incremental.cursor_field`)."""
        return None

    @classmethod
    def with_default_cursor_field(cls, config: SourceConfig) -> SourceConfig:
        """`config`, its `cursor_field` set to `default_cursor_field` when it has none."""
        if config.cursor_field is not None:
            return config
        default = cls.default_cursor_field(config)
        return config if default is None else config.model_copy(update={"cursor_field": default})

    @abstractmethod
    def get_authenticator(self) -> AuthBase | None:
        """The `requests` authenticator for `self.session`, or None."""

    @abstractmethod
    def check_connection(self) -> tuple[bool, str | None]:
        """`(True, None)` when the source can be reached, else `(False, reason)`."""

    def get_total_records_count(self) -> int | None:
        """How many records the stream holds, when the API tells cheaply; else None."""
        return None

    def probe(self) -> str | int | None:
        """A cheap value that changes when the stream has new data, for sensors.

        Defaults to `get_total_records_count()`; a source whose API tells the time of
        its latest change cheaply can return that instead. None: unknown.
        """
        return self.get_total_records_count()

    @abstractmethod
    def get(self, pagination: dict | None = None) -> SourceIteration:
        """Fetch one page; `pagination` is `None` or `{}` for the first page."""

    def get_records_between(
        self, start: datetime, end: datetime, pagination: dict | None = None
    ) -> SourceIteration:
        """One page of the records whose `cursor_field` is in `[start, end)`, for a time
        partition. By default every record is fetched and filtered here; a source whose
        API filters by time overrides this (a `RestSource` does, from its endpoint's
        `incremental` parameters)."""
        page = self.get(pagination)
        records = records_between(page.records, self.config.cursor_field, start, end)
        return SourceIteration(records=records, next_pagination=page.next_pagination)

    @classmethod
    def filters_windows(cls) -> bool:
        """Whether the API itself filters a partition's window (`get_records_between` is
        overridden), rather than every record being fetched for each partition."""
        return cls.get_records_between is not AbstractSource.get_records_between

    def get_records_after(
        self, source_state: SourceIncrementalState, pagination: dict | None = None
    ) -> SourceIteration:
        """Fetch one page of records changed after `source_state.last_run`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_records_after")

    @classmethod
    def supports_incremental(cls) -> bool:
        """Whether this source overrides `get_records_after`."""
        return cls.get_records_after is not AbstractSource.get_records_after

    def close(self) -> None:
        """Release the HTTP session."""
        if self._session is not None:
            self._session.close()
            self._session = None
