"""`SqliteStateStore`: the CLI's state store, one SQLite file (default `.bizon/state.db`)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bizon_core.errors import StateError
from bizon_core.secrets import seal, unseal
from bizon_core.source.config import SourceSyncModes
from bizon_core.sync.state import Checkpoint, StreamKey, SuccessfulRun

DEFAULT_STATE_PATH = Path(".bizon") / "state.db"
STATE_PATH_ENV = "BIZON_STATE_PATH"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    stream_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    sync_mode TEXT NOT NULL,
    records INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    cursor_field TEXT,
    state TEXT NOT NULL,
    PRIMARY KEY (stream_key, run_id)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    stream_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    sync_mode TEXT NOT NULL,
    pagination TEXT NOT NULL,
    records INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    destination TEXT NOT NULL,
    source_last_run TEXT,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS checkpoints_by_stream ON checkpoints (stream_key, created_at);
"""
#: Columns added since the first release, for state files written before them.
_ADDED_COLUMNS = {"checkpoints": {"state": "TEXT NOT NULL DEFAULT '{}'"}}


def default_state_path() -> Path:
    """`$BIZON_STATE_PATH`, else `.bizon/state.db` in the working directory."""
    return Path(os.environ.get(STATE_PATH_ENV) or DEFAULT_STATE_PATH)


class SqliteStateStore:
    """Runs and checkpoints in a SQLite file; a lock file per stream keeps runs apart."""

    #: A local insert is cheap: every durable flush is a checkpoint.
    checkpoint_interval = 0.0

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_state_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, db:
                db.executescript(_SCHEMA)
                _add_missing_columns(db)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc

    def last_success(self, key: StreamKey) -> SuccessfulRun | None:
        row = self._one(
            "SELECT run_id, started_at, finished_at, sync_mode, records, pages, cursor_field, state"
            " FROM runs WHERE stream_key = ? ORDER BY finished_at DESC LIMIT 1",
            (str(key),),
        )
        if row is None:
            return None
        return SuccessfulRun(
            run_id=row[0],
            started_at=datetime.fromisoformat(row[1]),
            finished_at=datetime.fromisoformat(row[2]),
            sync_mode=SourceSyncModes(row[3]),
            records=row[4],
            pages=row[5],
            cursor_field=row[6],
            state=orjson.loads(row[7]),
        )

    def resume_point(self, key: StreamKey) -> Checkpoint | None:
        last = self.last_success(key)
        after = last.finished_at.isoformat() if last else ""
        row = self._one(
            "SELECT run_id, started_at, sync_mode, pagination, records, pages, destination,"
            " source_last_run, created_at, state FROM checkpoints"
            " WHERE stream_key = ? AND created_at > ? ORDER BY created_at DESC LIMIT 1",
            (str(key), after),
        )
        if row is None:
            return None
        try:
            pagination, destination = unseal(orjson.loads(row[3])), unseal(orjson.loads(row[6]))
        except StateError as exc:
            raise StateError(f"stream {key}: {exc}; rerun with --no-resume to discard it") from None
        return Checkpoint(
            run_id=row[0],
            started_at=datetime.fromisoformat(row[1]),
            sync_mode=SourceSyncModes(row[2]),
            pagination=pagination,
            records=row[4],
            pages=row[5],
            destination=destination,
            source_last_run=datetime.fromisoformat(row[7]) if row[7] else None,
            created_at=datetime.fromisoformat(row[8]),
            state=orjson.loads(row[9]),
        )

    @contextmanager
    def lock(self, key: StreamKey) -> Iterator[None]:
        digest = hashlib.sha256(str(key).encode()).hexdigest()[:16]
        lock_path = self.path.parent / "locks" / f"{digest}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateError(f"stream {key} is already being synced by another run") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def checkpoint(self, key: StreamKey, checkpoint: Checkpoint) -> None:
        self._execute(
            "INSERT INTO checkpoints (stream_key, run_id, created_at, started_at, sync_mode,"
            " pagination, records, pages, destination, source_last_run, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(key),
                checkpoint.run_id,
                _now(),
                checkpoint.started_at.isoformat(),
                checkpoint.sync_mode.value,
                # Secrets inside the pagination (a next URL with a token) stored as references.
                orjson.dumps(seal(checkpoint.pagination)).decode(),
                checkpoint.records,
                checkpoint.pages,
                orjson.dumps(seal(checkpoint.destination)).decode(),
                checkpoint.source_last_run.isoformat() if checkpoint.source_last_run else None,
                orjson.dumps(checkpoint.state).decode(),
            ),
        )

    def commit(self, key: StreamKey, run: SuccessfulRun) -> None:
        self._execute(
            "INSERT INTO runs (stream_key, run_id, started_at, finished_at, sync_mode, records,"
            " pages, cursor_field, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(key),
                run.run_id,
                run.started_at.isoformat(),
                run.finished_at.isoformat(),
                run.sync_mode.value,
                run.records,
                run.pages,
                run.cursor_field,
                orjson.dumps(run.state).decode(),
            ),
            # Checkpoints of a committed stream are history: keep the table small.
            cleanup=("DELETE FROM checkpoints WHERE stream_key = ?", (str(key),)),
        )

    def reset(self, key: StreamKey) -> tuple[int, int]:
        """Forget the stream's runs and checkpoints: its next run fetches everything.
        Returns how many runs and checkpoints were removed."""
        try:
            with closing(self._connect()) as db, db:
                runs = db.execute("DELETE FROM runs WHERE stream_key = ?", (str(key),)).rowcount
                checkpoints = db.execute(
                    "DELETE FROM checkpoints WHERE stream_key = ?", (str(key),)
                ).rowcount
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc
        return runs, checkpoints

    def replace(self, key: StreamKey, run: SuccessfulRun) -> None:
        """Make `run` the stream's only committed run (an imported cursor)."""
        self.reset(key)
        self.commit(key, run)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def _one(self, sql: str, params: tuple) -> tuple | None:
        try:
            with closing(self._connect()) as db:
                return db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc

    def _execute(self, sql: str, params: tuple, cleanup: tuple[str, tuple] | None = None) -> None:
        try:
            with closing(self._connect()) as db, db:
                db.execute(sql, params)
                if cleanup is not None:
                    db.execute(*cleanup)
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}
        for name, declaration in columns.items():
            if name not in present:
                db.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {declaration}')


def _now() -> str:
    return datetime.now(UTC).isoformat()
