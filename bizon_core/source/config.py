"""The configuration every source shares; connectors subclass `SourceConfig` to add fields."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bizon_core.source.auth.config import AuthConfig


class SourceSyncModes(StrEnum):
    """How a stream is synced: everything each time, or only what changed since last time."""

    FULL_REFRESH = "full_refresh"
    INCREMENTAL = "incremental"


class HttpConfig(BaseModel):
    """Settings of the HTTP session a source gets as `self.session`."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for connect and read.")
    max_retries: int = Field(default=5, ge=0, description="Retries of a failed request.")
    backoff_factor: float = Field(default=0.5, ge=0, description="First backoff, in seconds.")
    max_backoff: float = Field(default=30.0, gt=0, description="Longest single wait, in seconds.")
    max_retry_wait: float = Field(
        default=120.0, ge=0, description="Longest total wait across the retries of one request."
    )


class SourceConfig(BaseModel):
    """`source:` of a pipeline: which source and stream, how to sync and authenticate.

    Unknown keys are refused so that a mistyped field is reported rather than ignored;
    a connector declares its own extra fields (page size, base URL, ...) in a subclass.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the source connector, e.g. `dummy`.")
    stream: str = Field(description="The stream to sync, one of the source's `streams()`.")
    sync_mode: SourceSyncModes = SourceSyncModes.FULL_REFRESH
    cursor_field: str | None = Field(
        default=None, description="Field that tells when a record changed, e.g. `updated_at`."
    )
    lookback: timedelta | None = Field(
        default=None,
        description=(
            "How far before the last run an incremental run fetches too, for clock skew "
            "between the API and this machine: a number and a unit, `30s`, `10m`, `2h`, `1d`."
        ),
    )
    authentication: AuthConfig | None = None
    page_size: int = Field(
        default=100, ge=1, description="Records per page, where the API takes it."
    )
    http: HttpConfig = Field(default_factory=HttpConfig)

    @field_validator("lookback", mode="before")
    @classmethod
    def _parse_lookback(cls, value: Any) -> timedelta | None:
        return parse_duration(value)


def parse_duration(value: Any) -> timedelta | None:
    """`30s`, `10m`, `2h` or `1d` (or a `timedelta`, or None) as a `timedelta`."""
    if value is None or isinstance(value, timedelta):
        return value
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a duration such as 30s, 10m, 2h or 1d")
    return timedelta(seconds=int(match[1]) * _SECONDS_PER_UNIT[match[2]])


_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
