"""`bizon run --explain`: what a run would fetch, request by request, with nothing written.

The stream is fetched exactly as `run_stream` fetches it (the same `last_run`, lookback
and previous state, `get` or `get_records_after`, the same page loop), but its records go
nowhere: the destination is never opened, the state store never written, no lock taken.
Each request is printed with its answer (secrets masked), each retry with its wait, each
page with its `next_pagination` and, on the last, the paginator's stop reason; at the end,
what the state would become.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import orjson
import requests

from bizon_core.config import Pipeline
from bizon_core.secrets import redact
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.incremental import HighestCursor
from bizon_core.source.models import SourceIncrementalState
from bizon_core.sync.pages import iterate_pages
from bizon_core.sync.runner import RunPlan, plan_stream
from bizon_core.sync.state import StateStore, StreamKey

_LOGGERS = ("bizon_core.source.session", "bizon_core.source.pagination")


@dataclass(frozen=True)
class Explained:
    """What an explained stream fetched."""

    records: int
    pages: int
    complete: bool


def explain_stream(
    pipeline: Pipeline,
    stream: str,
    store: StateStore | None,
    out: TextIO,
    max_records: int | None = None,
) -> Explained:
    """Fetch `stream` as a run would, printing each step to `out`; write nothing anywhere."""
    config = pipeline.source_configs[stream]
    plan = _plan(pipeline, stream, store)
    print(f"{stream}: explain — nothing is written and no state is saved", file=out)
    _print_plan(plan, pipeline, out)
    source = pipeline.source_class(config)
    highest = HighestCursor(config.cursor_field, stream)
    highest.resume(plan.previous_state if plan.mode is SourceSyncModes.INCREMENTAL else {})
    if plan.fetched_after is not None:
        state = SourceIncrementalState(
            last_run=plan.fetched_after,
            cursor_field=config.cursor_field,
            state=plan.previous_state,
        )

        def fetch(pagination: dict | None):
            return source.get_records_after(state, pagination)

    else:
        fetch = source.get
    started_at = datetime.now(UTC)
    records = pages = 0
    complete = False
    try:
        with _narrated(source.session, out):
            for page in iterate_pages(fetch, None, f"stream '{stream}'"):
                pages, records = pages + 1, records + len(page.iteration.records)
                highest.update(page.iteration.records)
                nxt = orjson.dumps(page.next_pagination).decode()
                print(
                    f"  page {pages}: {len(page.iteration.records)} records, "
                    f"next_pagination {redact(nxt)}",
                    file=out,
                )
                if not page.next_pagination:
                    complete = True
                elif max_records is not None and records >= max_records:
                    print(
                        f"  stopped after {records} records (--max-records {max_records}); "
                        f"a run would go on from {redact(nxt)}",
                        file=out,
                    )
                    break
    finally:
        source.close()
    _print_outcome(plan, records, pages, complete, started_at, highest, out)
    return Explained(records, pages, complete)


def _plan(pipeline: Pipeline, stream: str, store: StateStore | None) -> RunPlan:
    return plan_stream(pipeline, stream, store if store is not None else _NoState())


class _NoState:
    """The state of a pipeline never run: no store file is created to say so."""

    checkpoint_interval = 0.0

    def last_success(self, key: StreamKey) -> None:
        return None

    def resume_point(self, key: StreamKey) -> None:
        return None


def _print_plan(plan: RunPlan, pipeline: Pipeline, out: TextIO) -> None:
    if plan.mode is SourceSyncModes.INCREMENTAL and plan.fetched_after is not None:
        after = plan.fetched_after.isoformat()
        state = f", previous state {plan.previous_state}" if plan.previous_state else ""
        print(f"  incremental: records changed after {after}{state}", file=out)
    elif plan.mode is SourceSyncModes.INCREMENTAL:
        print("  incremental, no previous successful run: every record", file=out)
    else:
        print("  full refresh: every record", file=out)
    if plan.checkpoint is not None:
        print(
            f"  note: a run would resume the failed run {plan.checkpoint.run_id} after "
            f"{plan.checkpoint.records} records; explained from the first page instead",
            file=out,
        )
    print(f"  destination '{pipeline.destination_info.name}': not contacted", file=out)


def _print_outcome(
    plan: RunPlan,
    records: int,
    pages: int,
    complete: bool,
    started_at: datetime,
    highest: HighestCursor,
    out: TextIO,
) -> None:
    print(f"  fetched {records} records in {pages} pages", file=out)
    if not complete:
        print("  state: unchanged (the stream was not read to its end)", file=out)
        return
    new_state = highest.state()
    cursor = f", max_cursor {new_state['max_cursor']}" if new_state else ""
    print(
        f"  state after a real run: last_run {started_at.isoformat(timespec='seconds')} "
        f"({plan.mode.value}){cursor}; not saved",
        file=out,
    )


@contextmanager
def _narrated(session: requests.Session, out: TextIO) -> Iterator[None]:
    """Print each answer the session gets, and the retries and stop reasons logged."""

    def answer(response: requests.Response, *args: object, **kwargs: object) -> None:
        request = response.request
        size = response.headers.get("Content-Length", "?")
        print(
            f"  {request.method} {redact(request.url or '')} -> {response.status_code}, "
            f"{size} bytes, {response.elapsed.total_seconds() * 1000:.0f} ms",
            file=out,
        )

    handler = _Printer(out)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
        lg.propagate = False  # printed here, in order, rather than on stderr too
    session.hooks["response"].append(answer)
    try:
        yield
    finally:
        session.hooks["response"].remove(answer)
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


class _Printer(logging.Handler):
    def __init__(self, out: TextIO):
        super().__init__(logging.DEBUG)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  {redact(record.getMessage())}", file=self.out)
