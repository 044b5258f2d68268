"""The records a source returns, page by page, and the state of an incremental sync."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, InstanceOf


class SourceRecord(BaseModel):
    """One record: a unique `id` (numbers are turned into strings) and its `data`."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    # InstanceOf: the dict is the API's own, kept as is; copying it key by key to check
    # types would cost more than everything else the loop does per record.
    data: InstanceOf[dict[str, Any]]


class SourceIteration(BaseModel):
    """One page: its records and the pagination of the next page (`{}` when done)."""

    records: list[SourceRecord]
    next_pagination: dict[str, Any] = Field(default_factory=dict)


class SourceIncrementalState(BaseModel):
    """What an incremental source is told about the previous successful sync."""

    last_run: datetime
    state: dict[str, Any] = Field(default_factory=dict)
    cursor_field: str | None = None
