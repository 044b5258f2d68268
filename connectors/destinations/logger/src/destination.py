"""The `logger` destination: logs every record, for trying a source out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ConfigDict

from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import AbstractDestination
from bizon_core.source.models import SourceRecord

logger = logging.getLogger("bizon.destination.logger")


class LoggerDestinationConfig(DestinationConfig):
    """Takes no settings; any keys given (like `dummy: dummy`) are ignored."""

    model_config = ConfigDict(extra="ignore")


class LoggerDestination(AbstractDestination):
    """Logs each record as one JSON line at INFO level on the `bizon.destination.logger` logger."""

    @staticmethod
    def get_config_class() -> type[DestinationConfig]:
        return LoggerDestinationConfig

    def write(self, records: Sequence[SourceRecord]) -> dict[str, Any] | None:
        if logger.isEnabledFor(logging.INFO):
            for record in records:
                logger.info("%s %s", record.id, orjson.dumps(record.data).decode())
        return None

    def commit(self) -> None:
        logger.info("%s: all records logged", self.context.stream)

    def describe(self) -> dict[str, Any]:
        return {"logger": logger.name}
