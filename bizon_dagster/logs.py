"""The project's own log lines in a Dagster run: bizon's loggers forwarded to `context.log`.

The sync loop and the connectors log with the standard `logging` module ("fetching records
changed after ...", "resuming run ... after N records", retry warnings). During a step,
`forward_project_logs` hands those records to the step's `context.log`, so they appear in
the run's event log and, once, in its compute logs. Loggers the instance already captures
(`python_logs.managed_python_loggers` in `dagster.yaml`) are left to Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from dagster import AssetExecutionContext

#: The loggers of the SDK, of this integration and of every discovered connector.
PROJECT_LOGGERS = ("bizon_core", "bizon_dagster", "bizon_connectors")


class _ToContextLog(logging.Handler):
    """Re-logs each record on a Dagster step's log manager."""

    def __init__(self, log: logging.Logger, managed: Iterable[str]):
        super().__init__()
        self.log = log
        self.managed = tuple(managed)

    def emit(self, record: logging.LogRecord) -> None:
        if _captured_by_dagster(record.name, self.managed):
            return  # Dagster's own handler on a managed logger has it already
        try:
            self.log.log(record.levelno, record.getMessage(), exc_info=record.exc_info)
        except Exception:
            self.handleError(record)


@contextmanager
def forward_project_logs(
    context: AssetExecutionContext, level: int = logging.INFO
) -> Iterator[None]:
    """Within `with`, send the project's log records of `level` and up to `context.log`.

    While forwarded, the records do not also propagate to the root logger's handlers,
    which would print them a second time in the compute logs. Everything is restored on exit.
    """
    managed = tuple(context.instance.managed_python_loggers)
    handler = _ToContextLog(context.log, managed)
    changed: list[tuple[logging.Logger, int, bool]] = []
    for name in PROJECT_LOGGERS:
        if _captured_by_dagster(name, managed):
            continue
        logger = logging.getLogger(name)
        changed.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET:  # a level set on purpose is kept
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, saved_level, saved_propagate in changed:
            logger.removeHandler(handler)
            logger.setLevel(saved_level)
            logger.propagate = saved_propagate


def _captured_by_dagster(name: str, managed: tuple[str, ...]) -> bool:
    return any(m == "root" or name == m or name.startswith(m + ".") for m in managed)
