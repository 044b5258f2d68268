"""`AbstractDestination`: the contract every destination connector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from bizon_core.destination.config import DestinationConfig
from bizon_core.source.config import SourceSyncModes
from bizon_core.source.models import SourceRecord


@dataclass(frozen=True)
class DurableUpTo:
    """A marker that covers only the first `writes` calls of `write()` in this attempt.

    A destination that writes batches in the background returns it: the later pages are
    still being written, so the runner records the checkpoint of page `writes`.
    """

    writes: int
    marker: dict[str, Any]


@dataclass(frozen=True)
class TableReport:
    """A stream's table as it stands at the destination (for asset checks)."""

    rows: int
    null_ids: int
    #: Rows beyond the first of each id.
    duplicate_ids: int
    columns: list[tuple[str, str]]
    #: Whether the table keeps every version of a record (appends), so ids repeat.
    keeps_versions: bool = False


@dataclass(frozen=True)
class WriteContext:
    """What a destination knows about the run it writes for."""

    pipeline: str
    source: str
    stream: str
    #: `full_refresh` replaces the stream's previous data on commit; `incremental` adds to it.
    sync_mode: SourceSyncModes
    run_id: str
    started_at: datetime
    #: The time partition written (its rows are replaced on commit), None for the stream.
    partition: str | None = None


class AbstractDestination(ABC):
    """Base class of destinations: write batches, then commit them all at once.

    The runner calls, in order::

        begin(resume)            once; `resume` is a marker from a failed attempt, or None
        write(records) -> marker for each page; a marker (a small JSON-able dict) means
                                 everything written so far is durable and the run may be
                                 resumed from there; a `DurableUpTo(writes, marker)` means
                                 the first `writes` pages are
        flush() -> marker        once all pages are written: make them all durable
        commit()                 make everything visible (atomic swap, merge, rename)
        finalize(success)        always last: release resources

    The marker of `flush()` is recorded before `commit()`, so that a run that stops
    between its commit and its cursor's is resumed under the same run id, and a
    destination that remembers committed runs (see `bizon_core.destination.sql`) does
    not commit it twice.

    A run that fails before `commit()` returns must leave what readers see unchanged.
    """

    #: Whether the runner may fetch the next page while this destination writes.
    supports_background_fetch: ClassVar[bool] = True
    #: Whether `write()` may return `DurableUpTo`: the runner then keeps where each page
    #: not yet durable ends, to checkpoint it when it is.
    writes_in_background: ClassVar[bool] = False

    #: Whether a time partition's run replaces exactly that partition's rows on commit.
    replaces_partitions: ClassVar[bool] = False

    def __init__(self, config: DestinationConfig, context: WriteContext):
        self.config = config
        self.context = context

    @staticmethod
    @abstractmethod
    def get_config_class() -> type[DestinationConfig]:
        """The `DestinationConfig` subclass that validates this destination's config."""

    def check_connection(self) -> tuple[bool, str | None]:
        """`(True, None)` when the destination can be written to, else `(False, reason)`."""
        return True, None

    def begin(self, resume: dict[str, Any] | None) -> None:  # noqa: B027 - optional hook
        """Prepare a run; `resume` is the marker of the last durable write of a failed attempt."""

    @abstractmethod
    def write(self, records: Sequence[SourceRecord]) -> dict[str, Any] | DurableUpTo | None:
        """Write one page of records; return a resume marker when they are durable."""

    def flush(self) -> dict[str, Any] | None:
        """Make every record written so far durable; return its resume marker, or None."""
        return None

    @abstractmethod
    def commit(self) -> None:
        """Make every record written in this run visible to readers, atomically if possible."""

    def finalize(self, success: bool) -> None:  # noqa: B027 - optional hook
        """Release resources. Called once, after `commit()` or after a failure."""

    def describe(self) -> dict[str, Any]:
        """Where the data went (path, table, ...), for logs and metadata; never a secret."""
        return {}

    def existing_columns(self) -> list[tuple[str, str]] | None:
        """The stream's table's columns (name, type) when the destination can tell cheaply,
        without a run (for the catalog); None otherwise."""
        return None

    def table_report(self) -> TableReport | None:
        """The stream's table as committed: rows, missing and repeated ids, columns; None
        when the destination cannot tell or the table does not exist."""
        return None
