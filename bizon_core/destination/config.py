"""The configuration every destination shares; destinations subclass it to add fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DestinationConfig(BaseModel):
    """`destination.config:` of a pipeline. Unknown keys are refused, so typos are reported."""

    model_config = ConfigDict(extra="forbid")
