"""The sync loop: fetch pages from a source, write them to a destination, then move the cursor.

The same loop runs from the CLI and from Dagster; they differ only in their `StateStore`.
Order of a run, and what a crash at each step leaves behind:

1. read the last success (incremental) and a resume point (a failed run's checkpoint);
2. for each page: `destination.write` -> when it reports pages durable, `store.checkpoint`
   with the pagination after the last of them, at most every `store.checkpoint_interval`
   seconds (a crash here resumes from the previous checkpoint: the destination rolls back
   to it); after a source failure, a checkpoint of every page written, always;
3. `destination.flush()`, then a checkpoint with `pagination == {}`, always;
4. `destination.commit()` (a crash before it leaves readers' data as it was; a crash
   after it resumes from step 3's checkpoint, and the destination commits nothing twice);
5. `store.commit()` - only now does the cursor move.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bizon_core.config import Pipeline
from bizon_core.destination.destination import AbstractDestination, DurableUpTo, WriteContext
from bizon_core.errors import BizonError, DestinationError, SourceError
from bizon_core.secrets import redact
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.incremental import HighestCursor
from bizon_core.source.models import SourceIncrementalState, SourceIteration
from bizon_core.source.source import AbstractSource
from bizon_core.sync.memory import PagedCollection
from bizon_core.sync.pages import Page, iterate_pages, prefetched
from bizon_core.sync.state import (
    PARTITION_FIELD,
    Checkpoint,
    StateStore,
    StreamKey,
    SuccessfulRun,
    TimeWindow,
)

logger = logging.getLogger(__name__)


@dataclass
class RunProgress:
    """Where a running stream is; passed to the progress callback after every page."""

    key: StreamKey
    #: Pages and records of the whole run, earlier attempts included.
    pages: int = 0
    records: int = 0
    #: Monotonic start of this attempt.
    started: float = field(default_factory=time.monotonic)
    #: The records the stream will hold: known only for a full fetch, when the source's
    #: count of the collection is what the run fetches.
    total_records: int | None = None
    #: Records written by the earlier attempts this one resumed.
    resumed_records: int = 0

    @property
    def elapsed(self) -> float:
        """Seconds since this attempt started."""
        return time.monotonic() - self.started

    @property
    def attempt_records(self) -> int:
        """Records written by this attempt."""
        return self.records - self.resumed_records

    @property
    def records_per_second(self) -> float:
        """This attempt's records over this attempt's time."""
        elapsed = self.elapsed
        return self.attempt_records / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.records_per_second
        if self.total_records is None or rate <= 0 or self.records > self.total_records:
            return None
        return (self.total_records - self.records) / rate


@dataclass(frozen=True)
class RunResult:
    """What a successful stream run did; `run` is what was committed to the state store."""

    key: StreamKey
    run: SuccessfulRun
    duration_seconds: float
    #: `last_run` the source fetched after, None for a full fetch.
    fetched_after: datetime | None
    resumed_from: Checkpoint | None
    destination: dict[str, Any]

    @property
    def records(self) -> int:
        return self.run.records

    @property
    def pages(self) -> int:
        return self.run.pages

    @property
    def sync_mode(self) -> SourceSyncModes:
        """The mode actually used (an incremental request may fall back to full refresh)."""
        return self.run.sync_mode

    @property
    def attempt_records(self) -> int:
        """Records written by the attempt that committed (`records` less those resumed)."""
        return self.records - (self.resumed_from.records if self.resumed_from else 0)

    @property
    def records_per_second(self) -> float:
        """This attempt's records over this attempt's `duration_seconds`."""
        duration = self.duration_seconds
        return self.attempt_records / duration if duration > 0 else 0.0

    @property
    def max_cursor(self) -> str | None:
        """The highest `cursor_field` value fetched (ISO-8601, UTC), if tracked."""
        return self.run.state.get("max_cursor")


ProgressCallback = Callable[[RunProgress], None]


@dataclass(frozen=True)
class RunPlan:
    """What a run of a stream is to fetch, before it starts."""

    mode: SourceSyncModes
    #: The `last_run` an incremental run fetches after (lookback applied); None: everything.
    fetched_after: datetime | None
    #: The checkpoint a resumed run continues from.
    checkpoint: Checkpoint | None
    #: The state of the last successful run (`max_cursor`), told to the source.
    previous_state: dict[str, Any]


def plan_stream(pipeline: Pipeline, stream: str, store: StateStore, resume: bool = True) -> RunPlan:
    """What `run_stream` would fetch now, read from `store` without changing it."""
    key = pipeline.stream_key(stream)
    return _StreamRun(pipeline, stream, key, store, None).plan(resume)


@dataclass(frozen=True)
class _Written:
    """Where the run is after a page is written: what a checkpoint of that page records."""

    writes: int  # calls of `destination.write` up to and including this page's
    pagination: dict[str, Any]  # where the next page starts
    pages: int
    records: int
    state: dict[str, Any]  # the stream's state over the pages up to this one


def run_stream(
    pipeline: Pipeline,
    stream: str,
    store: StateStore,
    *,
    resume: bool = True,
    on_progress: ProgressCallback | None = None,
    window: TimeWindow | None = None,
) -> RunResult:
    """Sync one stream of `pipeline` (or one time partition of it, `window`), recording
    its state in `store`.

    A partition's run fetches the records whose cursor is in the window (see
    `AbstractSource.get_records_between`), marks them with the partition's key
    (`_bizon_partition`) and replaces that partition's rows at the destination; its
    checkpoints are its own. Raises a `BizonError` subclass when the run fails; the cursor
    is then unchanged and the destination's committed data is as it was.
    """
    key = pipeline.stream_key(stream, window.key if window else None)
    with store.lock(key):
        return _StreamRun(pipeline, stream, key, store, on_progress, window).run(resume)


class _StreamRun:
    def __init__(
        self,
        pipeline: Pipeline,
        stream: str,
        key: StreamKey,
        store: StateStore,
        on_progress: ProgressCallback | None,
        window: TimeWindow | None = None,
    ):
        self.pipeline = pipeline
        self.window = window
        self.key = key
        self.store = store
        self.on_progress = on_progress
        self.source_config = pipeline.source_configs[stream]
        self.label = f"source '{key.source}' stream '{stream}'"
        self._highest = HighestCursor(self.source_config.cursor_field, self.label)
        self._writes = 0
        self._previous_state: dict[str, Any] = {}
        #: Pages written in the background, not yet durable (see `DurableUpTo`).
        self._pending: list[_Written] = []
        self._last: _Written | None = None
        self._checkpoint_interval: float = getattr(store, "checkpoint_interval", 0.0)
        self._last_checkpoint: float | None = None  # monotonic time of the last one

    def plan(self, resume: bool) -> RunPlan:
        """What the run is to fetch, read from the store without changing it."""
        mode = self._effective_mode()
        if mode is SourceSyncModes.INCREMENTAL and self.source_config.cursor_field is None:
            logger.warning(
                "%s: incremental without source.cursor_field: a source that filters records "
                "itself cannot tell which changed, and no highest cursor value is recorded; "
                "set cursor_field (e.g. updated_at)",
                self.label,
            )
        checkpoint = self.store.resume_point(self.key) if resume else None
        if checkpoint is not None and checkpoint.sync_mode != mode:
            logger.info("%s: ignoring a checkpoint of a %s run", self.label, checkpoint.sync_mode)
            checkpoint = None
        fetched_after = self._fetch_after(mode, checkpoint)
        return RunPlan(mode, fetched_after, checkpoint, self._previous_state)

    def run(self, resume: bool) -> RunResult:
        plan = self.plan(resume)
        mode, fetched_after, checkpoint = plan.mode, plan.fetched_after, plan.checkpoint
        run_id = checkpoint.run_id if checkpoint else uuid.uuid4().hex
        started_at = checkpoint.started_at if checkpoint else datetime.now(UTC)
        source = self._make_source()
        try:
            context = WriteContext(
                pipeline=self.key.pipeline,
                source=self.key.source,
                stream=self.key.stream,
                sync_mode=mode,
                run_id=run_id,
                started_at=started_at,
                partition=self.key.partition,
            )
            destination = self._make_destination(context)
            # The count is the collection's: it tells how far a full fetch is, not an
            # incremental one.
            total = self._total(source) if fetched_after is None else None
            progress = RunProgress(self.key, total_records=total)
            if checkpoint is not None:
                progress.pages, progress.records = checkpoint.pages, checkpoint.records
                progress.resumed_records = checkpoint.records
                self._highest.resume(checkpoint.state)
                logger.info(
                    "%s: resuming run %s after %d records from %s",
                    self.label,
                    run_id,
                    checkpoint.records,
                    redact(str(checkpoint.pagination)),
                )
            self._load(source, destination, context, checkpoint, fetched_after, progress)
        finally:
            source.close()
        run = SuccessfulRun(
            run_id=run_id,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            sync_mode=mode,
            records=progress.records,
            pages=progress.pages,
            cursor_field=self.source_config.cursor_field,
            state=self._highest.state(),
        )
        self.store.commit(self.key, run)
        return RunResult(
            key=self.key,
            run=run,
            duration_seconds=progress.elapsed,
            fetched_after=fetched_after,
            resumed_from=checkpoint,
            destination=destination.describe(),
        )

    def _load(
        self,
        source: AbstractSource,
        destination: AbstractDestination,
        context: WriteContext,
        checkpoint: Checkpoint | None,
        fetched_after: datetime | None,
        progress: RunProgress,
    ) -> None:
        if fetched_after is not None:
            state = SourceIncrementalState(
                last_run=fetched_after,
                cursor_field=self.source_config.cursor_field,
                state=self._previous_state,
            )

            def fetch(pagination: dict | None):
                return source.get_records_after(state, pagination)
        elif self.window is not None:
            fetch = self._window_fetch(source, self.window)
        else:
            fetch = source.get
        if checkpoint is not None and not checkpoint.pagination:
            # Every page was written before the stop: only the commit is left.
            pages: Generator[Page, None, None] = (page for page in ())
        else:
            pages = iterate_pages(
                fetch,
                checkpoint.pagination if checkpoint else None,
                self.label,
                first_number=progress.pages + 1,
            )
            if destination.supports_background_fetch:
                pages = prefetched(pages)
        success = False
        try:
            self._guard(destination.begin, checkpoint.destination if checkpoint else None)
            with PagedCollection() as collection:
                while True:
                    try:
                        page = next(pages)
                    except StopIteration:
                        break
                    except BizonError:
                        self._keep_written(destination, context, fetched_after)
                        raise
                    self._write(page, destination, context, fetched_after, progress)
                    collection.page_done()
            marker = self._guard(destination.flush)
            if marker is not None:
                done = _Written(
                    self._writes, {}, progress.pages, progress.records, self._highest.state()
                )
                self._checkpoint(done, marker, context, fetched_after)
            self._guard(destination.commit)
            success = True
        finally:
            pages.close()
            try:
                destination.finalize(success)
            except Exception:
                if success:
                    raise
                logger.exception("%s: destination cleanup after a failure failed", self.label)

    def _write(
        self,
        page: Page,
        destination: AbstractDestination,
        context: WriteContext,
        fetched_after: datetime | None,
        progress: RunProgress,
    ) -> None:
        """Write one page; record a checkpoint when the destination says pages are durable."""
        marker = self._guard(destination.write, page.iteration.records)
        self._highest.update(page.iteration.records)
        progress.pages += 1
        progress.records += len(page.iteration.records)
        self._writes += 1
        written = _Written(
            self._writes,
            page.next_pagination,
            progress.pages,
            progress.records,
            self._highest.state(),
        )
        self._last = written
        if destination.writes_in_background:
            self._pending.append(written)
        if isinstance(marker, DurableUpTo):
            covered = [w for w in self._pending if w.writes <= marker.writes]
            del self._pending[: len(covered)]
            written, marker = (covered[-1], marker.marker) if covered else (written, None)
        elif marker is not None:  # every page so far
            self._pending.clear()
        if marker is not None and written.pagination and self._checkpoint_due():
            self._checkpoint(written, marker, context, fetched_after)
        if self.on_progress is not None:
            self.on_progress(progress)

    def _keep_written(
        self,
        destination: AbstractDestination,
        context: WriteContext,
        fetched_after: datetime | None,
    ) -> None:
        """After the source failed: make the pages written durable, and checkpoint them.

        The next attempt then resumes after the last page written, not after the last
        batch; a failure to do so is only logged: the source's error is the one to tell.
        """
        if self._last is None or not self._last.pagination:
            return
        try:
            marker = destination.flush()
        except Exception as exc:
            logger.warning(
                "%s: cannot keep the pages written before the failure: %s",
                self.label,
                redact(str(exc)),
            )
            return
        if marker is not None:
            self._checkpoint(self._last, marker, context, fetched_after)

    def _checkpoint_due(self) -> bool:
        """Whether an intermediate checkpoint is to be recorded: the first one of the
        attempt always, then at most one per `checkpoint_interval` seconds."""
        last = self._last_checkpoint
        return last is None or time.monotonic() - last >= self._checkpoint_interval

    def _checkpoint(
        self,
        written: _Written,
        marker: dict[str, Any],
        context: WriteContext,
        fetched_after: datetime | None,
    ) -> None:
        """Record where to resume: after `written`; its `pagination == {}`: after every page."""
        self._last_checkpoint = time.monotonic()
        self.store.checkpoint(
            self.key,
            Checkpoint(
                run_id=context.run_id,
                started_at=context.started_at,
                sync_mode=context.sync_mode,
                pagination=written.pagination,
                records=written.records,
                pages=written.pages,
                destination=marker,
                source_last_run=fetched_after,
                state=written.state,
            ),
        )

    def _window_fetch(
        self, source: AbstractSource, window: TimeWindow
    ) -> Callable[[dict | None], SourceIteration]:
        if not type(source).filters_windows():
            logger.warning(
                "%s: the source cannot filter by time: partition %s fetches every record "
                "and keeps those with %s in [%s, %s)",
                self.label,
                window.key,
                self.source_config.cursor_field,
                window.start.isoformat(),
                window.end.isoformat(),
            )

        def fetch(pagination: dict | None) -> SourceIteration:
            page = source.get_records_between(window.start, window.end, pagination)
            for record in page.records:
                record.data[PARTITION_FIELD] = window.key
            return page

        return fetch

    def _effective_mode(self) -> SourceSyncModes:
        mode = self.source_config.sync_mode
        if self.window is not None:
            return SourceSyncModes.FULL_REFRESH  # of the partition: its rows are replaced
        if (
            mode is SourceSyncModes.INCREMENTAL
            and not self.pipeline.source_class.supports_incremental()
        ):
            logger.warning(
                "%s: the source does not implement get_records_after; running a full refresh",
                self.label,
            )
            return SourceSyncModes.FULL_REFRESH
        return mode

    def _fetch_after(self, mode: SourceSyncModes, checkpoint: Checkpoint | None) -> datetime | None:
        if mode is not SourceSyncModes.INCREMENTAL:
            return None
        last = self.store.last_success(self.key)
        # The source is told the previous run's state (`max_cursor`), and the new state
        # keeps it when this run fetches nothing later.
        self._previous_state = last.state if last is not None else {}
        self._highest.resume(self._previous_state)
        if checkpoint is not None:
            return checkpoint.source_last_run
        if last is None:
            logger.info("%s: no previous successful run; fetching everything", self.label)
            return None
        lookback = self.source_config.lookback
        if not lookback:
            logger.info(
                "%s: fetching records changed after %s", self.label, last.started_at.isoformat()
            )
            return last.started_at
        after = last.started_at - lookback
        logger.info(
            "%s: fetching records changed after %s (the last run, %s, less the lookback %s)",
            self.label,
            after.isoformat(),
            last.started_at.isoformat(),
            lookback,
        )
        return after

    def _make_source(self) -> AbstractSource:
        try:
            return self.pipeline.source_class(self.source_config)
        except BizonError:
            raise
        except Exception as exc:
            raise SourceError(redact(f"{self.label}: cannot be created: {exc}")) from exc

    def _make_destination(self, context: WriteContext) -> AbstractDestination:
        return self._guard(
            self.pipeline.destination_class, self.pipeline.destination_config, context
        )

    def _total(self, source: AbstractSource) -> int | None:
        try:
            return source.get_total_records_count()
        except Exception as exc:  # a count is a nicety: never fail a run for it
            logger.debug("%s: total records count unavailable: %s", self.label, redact(str(exc)))
            return None

    def _guard(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BizonError:
            raise
        except Exception as exc:
            name = self.pipeline.destination_info.name
            raise DestinationError(
                redact(f"destination '{name}' (stream '{self.key.stream}'): {_describe(exc)}")
            ) from exc


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
