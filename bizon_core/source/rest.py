"""`RestSource`: a REST API source declared by its base URL, endpoints and paginator.

A standard REST connector declares what differs from API to API and inherits `get()`,
`get_records_after()`, `check_connection()` and authentication from the config::

    class AcmeSource(RestSource):
        \"\"\"Users and orders of the Acme API.\"\"\"

        base_url = "https://api.acme.example/v1"
        paginator = CursorPaginator(cursor_path="next_cursor", param="cursor")
        endpoints = {
            "users": Endpoint(path="users", records_path="items",
                              incremental=Incremental(param="updated_after",
                                                      cursor_field="updated_at")),
            "orders": Endpoint(path="orders", records_path="items"),
        }

`streams()` are the keys of `endpoints`. A path may name the config's fields
(`repos/{owner}/{repo}/issues`), and a child endpoint the fields of each record of its
parent (`users/{user_id}/orders` with `parent=Parent(stream="users", fields={"user_id": "id"})`).
Override `parse_records()` for what the declarations cannot say. The declarative
`rest_api` source reads the same `Endpoint` models from YAML.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from string import Formatter
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator
from requests.auth import AuthBase

from bizon_core.errors import ConfigError, HttpError, RecordError, SourceError
from bizon_core.secrets import redact
from bizon_core.source.auth.builder import AuthBuilder
from bizon_core.source.config import SourceConfig
from bizon_core.source.incremental import records_after, records_between
from bizon_core.source.models import SourceIncrementalState, SourceIteration, SourceRecord
from bizon_core.source.pagination import (
    MISSING,
    PageDecision,
    Paginator,
    PaginatorConfig,
    SinglePagePaginator,
    json_path,
)
from bizon_core.source.source import AbstractSource

logger = logging.getLogger(__name__)


def _keep_paginator_instances(value: Any, handler: Any) -> Any:
    # A Paginator of the author's own (not one of the built-in types) is taken as is.
    return value if isinstance(value, Paginator) else handler(value)


#: A built-in paginator by its `type`, or (in Python) any `Paginator` instance.
AnyPaginator = Annotated[PaginatorConfig, WrapValidator(_keep_paginator_instances)]


class Incremental(BaseModel):
    """How an endpoint fetches only what changed since the last run.

    With `param`, the API filters: the parameter is sent with the start of the previous
    successful run (`start: last_run`) or the highest `cursor_field` value it loaded
    (`start: max_cursor`, falling back to `last_run` before one is known). Without
    `param` (or with `client_filter: true`), records are filtered here on `cursor_field`;
    with `newest_first: true` too, the pages after the first record older than the start
    are not fetched (an API that cannot filter but sorts by change time, newest first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    param: str | None = Field(
        default=None, description="Query parameter (JSON body field for POST) of the start."
    )
    start: Literal["last_run", "max_cursor"] = Field(
        default="last_run", description="What the parameter is filled from."
    )
    format: str = Field(
        default="iso",
        description="`iso`, `iso_z` (UTC with Z), `epoch`, `epoch_ms`, or a strftime pattern.",
    )
    cursor_field: str | None = Field(
        default=None, description="The record's field telling when it changed, e.g. updated_at."
    )
    client_filter: bool = Field(
        default=False, description="Filter the answer on cursor_field here too."
    )
    end_param: str | None = Field(
        default=None,
        description="Query parameter of the end of a time partition's window (exclusive "
        "or not: records are also filtered here), e.g. created[lt].",
    )
    newest_first: bool = Field(
        default=False,
        description="The API returns records newest first: filtering here, stop paging at "
        "the first page that reaches the start.",
    )

    def value(self, moment: datetime) -> str | int:
        """`moment` as the API expects it."""
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        match self.format:
            case "iso":
                return moment.isoformat()
            case "iso_z":
                return moment.isoformat().replace("+00:00", "Z")
            case "epoch":
                return int(moment.timestamp())
            case "epoch_ms":
                return int(moment.timestamp() * 1000)
        return moment.strftime(self.format)


class Parent(BaseModel):
    """A child endpoint's parent: its path takes `fields` from each of the parent's records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = Field(description="The parent endpoint.")
    fields: dict[str, str] = Field(
        min_length=1,
        description="Placeholder of the child's path -> field of the parent's record (dotted).",
    )


class Endpoint(BaseModel):
    """One stream of a REST API: where it is, where its records are, how it pages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Path under the base URL, or a full URL; may hold {fields}.")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = Field(
        default_factory=dict, description="Query parameters (the JSON body for POST)."
    )
    records_path: str | None = Field(
        default=None,
        description="Dotted path of the list of records in the body; none: the body is the list.",
    )
    id_field: str | list[str] = Field(
        default="id", description="Field (dotted) of the record's id, or fields joined by '-'."
    )
    paginator: AnyPaginator | None = Field(
        default=None, description="How the endpoint pages; none: the source's paginator."
    )
    incremental: Incremental | None = None
    parent: Parent | None = None


class RestSourceConfig(SourceConfig):
    """The config of a `RestSource`: the common fields, and a base URL to override the source's."""

    base_url: str | None = Field(
        default=None, description="Base URL of the API, instead of the connector's own."
    )


class RestSource(AbstractSource):
    """A source over a REST API: subclasses set `base_url`, `endpoints` and `paginator`."""

    base_url: ClassVar[str] = ""
    endpoints: ClassVar[dict[str, Endpoint]] = {}
    paginator: ClassVar[Paginator] = SinglePagePaginator()
    #: Headers sent with every request (e.g. an API version).
    headers: ClassVar[dict[str, str]] = {}
    #: Dotted path of the message in the API's error bodies (e.g. `error.message`): an
    #: HTTP error then shows that message instead of the start of the raw body.
    error_message_path: ClassVar[str | None] = None
    config_class: ClassVar[type[RestSourceConfig]] = RestSourceConfig

    def __init__(self, config: RestSourceConfig):
        super().__init__(config)
        self.config: RestSourceConfig = config
        self._endpoints = self.declared_endpoints(config)
        if config.stream not in self._endpoints:
            raise ConfigError(f"source.stream: no endpoint declared for stream '{config.stream}'")
        self.endpoint = self._endpoints[config.stream]
        self._parent_pages: dict[str, tuple[Any, SourceIteration]] = {}

    @classmethod
    def streams(cls) -> list[str]:
        return list(cls.endpoints)

    @classmethod
    def get_config_class(cls) -> type[SourceConfig]:
        return cls.config_class

    @classmethod
    def supports_incremental(cls) -> bool:
        """Whether an endpoint declares `incremental`, or `get_records_after` is overridden."""
        overridden = cls.get_records_after is not RestSource.get_records_after
        return overridden or any(e.incremental is not None for e in cls.endpoints.values())

    @classmethod
    def default_cursor_field(cls, config: SourceConfig) -> str | None:
        """The `cursor_field` of the stream's `incremental`, if it declares one."""
        endpoint = cls.declared_endpoints(config).get(config.stream)  # type: ignore[arg-type]
        incremental = endpoint.incremental if endpoint is not None else None
        return incremental.cursor_field if incremental is not None else None

    @classmethod
    def declared_endpoints(cls, config: RestSourceConfig) -> dict[str, Endpoint]:
        """The endpoints by stream name (the declarative source reads them from its config)."""
        return cls.endpoints

    def api_base_url(self) -> str:
        """The base URL requests go to: the config's, else the connector's."""
        return (self.config.base_url or self.base_url).rstrip("/")

    def request_headers(self) -> dict[str, str]:
        """Headers added to every request."""
        return dict(self.headers)

    def config_params(self, endpoint: Endpoint) -> dict[str, Any]:
        """Parameters the config adds to the endpoint's own (e.g. a search filter)."""
        return {}

    def get_authenticator(self) -> AuthBase | None:
        return AuthBuilder.from_config(self.config.authentication)

    def check_connection(self) -> tuple[bool, str | None]:
        """Fetch the first page of the stream (of its parent, for a child stream)."""
        endpoint = self.endpoint
        while endpoint.parent is not None:
            endpoint = self._endpoints[endpoint.parent.stream]
        try:
            self.fetch_page(endpoint, None, {}, {})
        except (SourceError, requests.RequestException) as exc:
            return False, str(exc)
        return True, None

    def get(self, pagination: dict | None = None) -> SourceIteration:
        return self._stream_page(self.endpoint, pagination, {})

    def get_records_after(
        self, source_state: SourceIncrementalState, pagination: dict | None = None
    ) -> SourceIteration:
        incremental = self.endpoint.incremental or Incremental()
        extra: dict[str, Any] = {}
        if incremental.param is not None:
            start = source_state.last_run
            max_cursor = source_state.state.get("max_cursor")
            if incremental.start == "max_cursor" and max_cursor is not None:
                start = datetime.fromisoformat(max_cursor)
            extra[incremental.param] = incremental.value(start)
        page = self._stream_page(self.endpoint, pagination, extra)
        if incremental.param is None or incremental.client_filter:
            state = source_state
            if state.cursor_field is None:
                state = state.model_copy(update={"cursor_field": incremental.cursor_field})
            records = records_after(page.records, state)
            next_pagination = page.next_pagination
            if incremental.newest_first and len(records) < len(page.records) and next_pagination:
                logger.info(
                    "stream '%s': reached records older than %s, newest first: no more pages",
                    self.config.stream,
                    state.last_run.isoformat(),
                )
                next_pagination = {}
            page = SourceIteration(records=records, next_pagination=next_pagination)
        return page

    def get_records_between(
        self, start: datetime, end: datetime, pagination: dict | None = None
    ) -> SourceIteration:
        """The page's records in `[start, end)`: `param` and `end_param` sent when declared,
        and the window filtered here on the cursor field in any case."""
        incremental = self.endpoint.incremental or Incremental()
        extra: dict[str, Any] = {}
        if incremental.param is not None:
            # A second early, as an API may take the start as exclusive (`after`): the
            # window's first record is then fetched too, and the filter below keeps the
            # window exactly.
            extra[incremental.param] = incremental.value(start - timedelta(seconds=1))
        if incremental.end_param is not None:
            extra[incremental.end_param] = incremental.value(end)
        page = self._stream_page(self.endpoint, pagination, extra)
        field = self.config.cursor_field or incremental.cursor_field
        records = records_between(page.records, field, start, end)
        next_pagination = page.next_pagination
        if incremental.newest_first and field is not None and next_pagination:
            older = records_between(page.records, field, datetime.min.replace(tzinfo=UTC), start)
            next_pagination = {} if older else next_pagination
        return SourceIteration(records=records, next_pagination=next_pagination)

    @classmethod
    def filters_windows(cls) -> bool:
        return any(e.incremental and e.incremental.param for e in cls.endpoints.values())

    def _stream_page(
        self, endpoint: Endpoint, pagination: dict | None, extra: dict[str, Any]
    ) -> SourceIteration:
        if endpoint.parent is None:
            return self.fetch_page(endpoint, pagination, extra, {})
        return self._child_page(endpoint, endpoint.parent, pagination or {}, extra)

    def _child_page(
        self, endpoint: Endpoint, parent: Parent, pagination: dict, extra: dict[str, Any]
    ) -> SourceIteration:
        """One page of the child endpoint for one parent record.

        The pagination names the parent's page, the record's index in it and the child's
        own pagination, so a run resumes at the very parent and page it stopped at.
        """
        parent_pagination = pagination.get("parent")
        index = pagination.get("index", 0)
        parents = self._parent_page(parent.stream, parent_pagination)
        while index >= len(parents.records):
            if not parents.next_pagination:
                return SourceIteration(records=[], next_pagination={})
            parent_pagination, index = parents.next_pagination, 0
            parents = self._parent_page(parent.stream, parent_pagination)
        record = parents.records[index]
        values = {name: _field(record, path, parent.stream) for name, path in parent.fields.items()}
        page = self.fetch_page(endpoint, pagination.get("page"), extra, values)
        for child in page.records:
            child.data.update({f"_{parent.stream}_{name}": v for name, v in values.items()})
        if page.next_pagination:
            nxt = {"parent": parent_pagination, "index": index, "page": page.next_pagination}
        elif index + 1 < len(parents.records) or parents.next_pagination:
            nxt = {"parent": parent_pagination, "index": index + 1}
        else:
            nxt = {}
        return SourceIteration(records=page.records, next_pagination=nxt)

    def _parent_page(self, stream: str, pagination: dict | None) -> SourceIteration:
        cached = self._parent_pages.get(stream)
        if cached is None or cached[0] != pagination:
            endpoint = self._endpoints[stream]
            cached = (pagination, self._stream_page(endpoint, pagination, {}))
            self._parent_pages[stream] = cached
        return cached[1]

    def fetch_page(
        self,
        endpoint: Endpoint,
        pagination: dict | None,
        extra: dict[str, Any],
        path_values: Mapping[str, Any],
    ) -> SourceIteration:
        """Request one page of `endpoint` and turn it into records and the next pagination."""
        paginator = endpoint.paginator or self.paginator
        params = {**endpoint.params, **self.config_params(endpoint), **extra}
        url, params = paginator.request(self._url(endpoint, path_values), pagination, params)
        headers = self.request_headers() or None
        try:
            if endpoint.method == "POST":
                # A source only reads: its POSTs are queries (search), safe to repeat.
                response = self.session.post(url, json=params, headers=headers, retry=True)
            else:
                response = self.session.get(url, params=params, headers=headers)
        except HttpError as exc:
            raise self._with_api_message(exc) from None
        body = _json(response)
        records = self.parse_records(endpoint, response, body)
        decision: PageDecision = paginator.next_page(pagination, response, body, records)
        return SourceIteration(records=records, next_pagination=decision.next_pagination)

    def _with_api_message(self, error: HttpError) -> HttpError:
        if self.error_message_path is None or error.response is None:
            return error
        try:
            message = json_path(error.response.json(), self.error_message_path)
        except ValueError:
            return error
        return error.with_detail(redact(message)) if isinstance(message, str) else error

    def parse_records(
        self, endpoint: Endpoint, response: requests.Response, body: Any
    ) -> list[SourceRecord]:
        """The records of one answer: the list at `records_path`, each with its id."""
        items = body if endpoint.records_path is None else json_path(body, endpoint.records_path)
        if not isinstance(items, list):
            where = f"at records_path '{endpoint.records_path}'" if endpoint.records_path else ""
            keys = f" (its keys: {', '.join(map(str, body))})" if isinstance(body, dict) else ""
            raise SourceError(
                f"stream '{self.config.stream}': no list of records {where} in the answer of "
                f"{response.request.method} {response.url}{keys}; set records_path"
            )
        id_field = endpoint.id_field
        if isinstance(id_field, str) and "." not in id_field:
            try:  # the common case, at the speed of a hand-written loop
                return [SourceRecord(id=item[id_field], data=item) for item in items]
            except (KeyError, TypeError, ValidationError):
                pass  # the loop below names the record at fault
        id_fields = [id_field] if isinstance(id_field, str) else id_field
        records = []
        for item in items:
            if not isinstance(item, dict):
                raise RecordError(f"stream '{self.config.stream}': a record is not an object")
            record_id = "-".join(str(_field(item, f, self.config.stream)) for f in id_fields)
            records.append(SourceRecord(id=record_id, data=item))
        return records

    def _url(self, endpoint: Endpoint, path_values: Mapping[str, Any]) -> str:
        path, names = endpoint.path, _placeholders(endpoint.path)
        values = {**self.config.model_dump(mode="json"), **path_values} if names else {}
        try:
            path = path.format_map({name: quote(str(values[name]), safe="") for name in names})
        except KeyError as exc:
            raise ConfigError(
                f"stream '{self.config.stream}': path '{endpoint.path}' names {exc.args[0]!r}, "
                "which is neither a config field nor a parent field"
            ) from None
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.api_base_url()}/{path.lstrip('/')}"


@functools.cache
def _placeholders(path: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in Formatter().parse(path) if name)


def _field(item: dict[str, Any] | SourceRecord, path: str, stream: str) -> Any:
    data = item.data if isinstance(item, SourceRecord) else item
    value = json_path(data, path)
    if value is MISSING or value is None:
        raise RecordError(
            f"stream '{stream}': a record has no field '{path}' (its fields: "
            f"{', '.join(list(data)[:10])})"
        )
    return value


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SourceError(
            f"{response.request.method} {response.url} answered {response.status_code} with "
            f"{response.headers.get('Content-Type', 'no content type')}, not JSON"
        ) from None
