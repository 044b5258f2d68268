"""The `rest_api` source: a REST API described in the pipeline YAML, with no Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import Field, model_validator

from bizon_core.source.pagination import Paginator, SinglePagePaginator
from bizon_core.source.rest import AnyPaginator, Endpoint, RestSource, RestSourceConfig


class RestApiConfig(RestSourceConfig):
    """`source:` of a `rest_api` pipeline: the API's base URL, headers, default paginator
    and one endpoint per stream (see `bizon_core.source.rest.Endpoint`)."""

    base_url: str = Field(description="Base URL of the API, e.g. https://api.example.com/v1.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers sent with every request."
    )
    paginator: AnyPaginator = Field(
        default_factory=SinglePagePaginator,
        description="How endpoints page, unless they say otherwise.",
    )
    endpoints: dict[str, Endpoint] = Field(
        min_length=1, description="The streams: their name and where and how to read them."
    )

    @model_validator(mode="after")
    def _check_endpoints(self) -> Self:
        if self.stream not in self.endpoints:
            raise ValueError(
                f"stream '{self.stream}' is not under endpoints "
                f"(declared: {', '.join(self.endpoints)})"
            )
        for name, endpoint in self.endpoints.items():
            seen = [name]
            while endpoint.parent is not None:
                parent = endpoint.parent.stream
                if parent not in self.endpoints:
                    raise ValueError(f"endpoints.{name}.parent.stream: no endpoint '{parent}'")
                if parent in seen:
                    raise ValueError(f"endpoints.{name}: parents loop ({' -> '.join(seen)})")
                seen.append(parent)
                endpoint = self.endpoints[parent]
        return self


class RestApiSource(RestSource):
    """Any REST API, declared in YAML: base URL, headers, auth, and per stream its path,
    params, records path, id, paginator, incremental parameter and parent stream."""

    config_class = RestApiConfig
    config: RestApiConfig

    @classmethod
    def available_streams(cls, source: Mapping[str, Any]) -> list[str] | None:
        endpoints = source.get("endpoints")
        return list(endpoints) if isinstance(endpoints, Mapping) and endpoints else None

    @classmethod
    def supports_incremental(cls) -> bool:
        return True  # its endpoints, in the config, say how

    @classmethod
    def filters_windows(cls) -> bool:
        return True  # likewise

    @classmethod
    def declared_endpoints(cls, config: RestSourceConfig) -> dict[str, Endpoint]:
        return config.endpoints if isinstance(config, RestApiConfig) else {}

    @property
    def paginator(self) -> Paginator:  # type: ignore[override]
        return self.config.paginator

    def api_base_url(self) -> str:
        return self.config.base_url.rstrip("/")

    def request_headers(self) -> dict[str, str]:
        return dict(self.config.headers)
