"""The load lock of a PostgreSQL table: a session advisory lock, never held by the dead.

A load holds `pg_advisory_lock(hashtext('<schema>.<table>'))` for its whole run. The
lock belongs to the load's server session, which outlives its client when the client
dies while the server runs a statement for it (a commit, an index, a wait): a rerun
would be refused until that statement ends. So:

- every session names its client in `application_name` (`bizon:<host>:<pid>:<start>`,
  the process's start time telling a pid reused by another process apart), asks the
  server to check for a vanished client every second even mid-statement
  (`client_connection_check_interval`) and to probe an idle connection with TCP
  keepalives, so that the server ends a dead client's session in bounded time;
- a load that finds the lock taken looks the holder up (`pg_locks`,
  `pg_stat_activity`): a holder whose process on this host is gone has its session
  ended (`pg_terminate_backend`, allowed to the same role) and the lock is taken; a
  live holder, or one of another host or program, makes the load fail at once, naming it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

#: Seconds a dead holder's session is given to end, once told to (or, when this role
#: may not end it, for the server to notice its client is gone).
GONE_HOLDER_WAIT = 30.0
#: Sent after connecting: the server checks every second, even during a statement,
#: that the client is still connected, and probes idle TCP connections after 60 s
#: (3 probes 10 s apart), so the session of a client that died ends in bounded time.
SESSION_BOUNDS = {
    "tcp_keepalives_idle": "60",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}
CHECK_INTERVAL = ("client_connection_check_interval", "1s", 140000)  # PostgreSQL 14+
_NAME = re.compile(r"^bizon:(?P<host>[^:]*):(?P<pid>\d+):(?P<start>\d+)$")
#: Room for the host in 63 bytes, beside "bizon:", a pid and a start time.
_MAX_HOST = 36


def application_name() -> str:
    """`bizon:<host>:<pid>:<start time>` of this process, within PostgreSQL's 63 bytes."""
    pid = os.getpid()
    return f"bizon:{_host()}:{pid}:{_start_time(pid) or 0}"


def bound_session(conn: psycopg.Connection) -> None:
    """Make the server end this session soon after its client dies (see the module)."""
    for name, value in SESSION_BOUNDS.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    name, value, since = CHECK_INTERVAL
    if conn.info.server_version >= since:
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


@dataclass(frozen=True)
class Holder:
    """The session holding a load lock, as the server describes it."""

    backend: int
    application_name: str | None
    client: str | None
    since: datetime | None

    def describe(self) -> str:
        found = _NAME.match(self.application_name or "")
        if found:
            who = f"process {found['pid']} on {found['host']}"
        else:
            who = f"{self.application_name or 'a client'} at {self.client or 'an unknown address'}"
        since = f" since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"held by {who}{since}, server session {self.backend}"

    def is_gone(self) -> bool:
        """Whether the holder is a bizon process of this host that no longer runs."""
        found = _NAME.match(self.application_name or "")
        if not found or found["host"] != _host():
            return False
        pid, start = int(found["pid"]), int(found["start"])
        if pid == os.getpid():
            return False  # this process: another of its loads, alive
        return not _alive(pid, start)


class LoadLock:
    """The advisory lock of one table, taken on one session."""

    def __init__(self, conn: psycopg.Connection, key: str):
        self.conn = conn
        self.key = key

    def try_take(self) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (self.key,)).fetchone()
        return bool(row and row[0])

    def take(self) -> Holder | None:
        """Take the lock, ending a gone holder's session; the live holder if it cannot."""
        ending: int | None = None  # the gone holder's session being ended
        deadline = time.monotonic() + GONE_HOLDER_WAIT
        while not self.try_take():
            holder = self.holder()
            if holder is not None and not holder.is_gone():
                return holder
            if time.monotonic() > deadline:
                return holder or Holder(0, None, None, None)  # held, by whom unseen
            if holder is not None and holder.backend != ending:
                ending = holder.backend
                self._end(holder)
            time.sleep(0.1)
        return None

    def release(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.key,))

    def holder(self) -> Holder | None:
        """The session holding the lock, if any (a session advisory lock on a bigint key)."""
        row = self.conn.execute(
            "SELECT l.pid, a.application_name, host(a.client_addr) || ':' || a.client_port,"
            " a.backend_start FROM pg_catalog.pg_locks l"
            " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
            " WHERE datname = current_database())"
            " AND (l.classid::bigint << 32 | l.objid::bigint) = hashtext(%s)::bigint",
            (self.key,),
        ).fetchone()
        return Holder(*row) if row else None

    def _end(self, holder: Holder) -> None:
        logger.warning(
            "the load lock of %s is %s, which is gone: ending that session",
            self.key,
            holder.describe(),
        )
        try:
            self.conn.execute("SELECT pg_terminate_backend(%s)", (holder.backend,))
        except psycopg.errors.InsufficientPrivilege:
            logger.warning(
                "this role may not end server session %s; waiting up to %.0f s for the server "
                "to notice its client is gone",
                holder.backend,
                GONE_HOLDER_WAIT,
            )


def _host() -> str:
    """This host's name, shortened with a hash beyond `_MAX_HOST` characters."""
    host = socket.gethostname().replace(":", "_")
    if len(host.encode()) <= _MAX_HOST:
        return host
    digest = hashlib.sha1(host.encode()).hexdigest()[:8]
    return host.encode()[: _MAX_HOST - 9].decode(errors="ignore") + "~" + digest


def _alive(pid: int, start: int) -> bool:
    """Whether process `pid`, started at `start` (0: unknown), still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, another user's
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc: the pid exists, take it as the holder
    state, started = stat
    return state != "Z" and (start == 0 or started == start)


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state and start time (clock ticks after boot), from /proc; None without."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command) "
    return fields[0], int(fields[19])
