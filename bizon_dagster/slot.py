"""A stream's concurrency slot: one Dagster run syncs a stream at a time, a dead one blocks nothing.

The slot `bizon/<pipeline>/<source>/<stream>` (limit 1) lives in the instance's storage.
Its claim's step key names the process holding it and that process's parent (the run
worker, under Dagster's multiprocess executor) — `bizon:<asset> [<host> pid <pid> start
<start> parent <ppid> start <start>]` — so a later run can tell a live holder from a dead one:

- a holder whose run is finished (or deleted) is stale;
- a holder on this host whose process is gone (no such pid, a zombie, or a pid reused by
  a process started at another time) is stale, even though its run still shows STARTED;
  when its parent is gone too, nothing will ever end that run, so it is reported failed
  (as Dagster's run monitoring does for a dead run worker);
- a holder on another host is taken as alive: the refusal names its run and says how to
  mark it failed. A live holder is never freed.

A refused run drops its own pending claim, which would otherwise be handed the slot when
the holder frees it and block every later run.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from bizon_core.errors import StateError

logger = logging.getLogger(__name__)

_STEP_KEY = re.compile(
    r"^bizon:(?P<asset>.*) \[(?P<host>\S+) pid (?P<pid>\d+) start (?P<start>\S+)"
    r"(?: parent (?P<ppid>\d+) start (?P<pstart>\S+))?\]$"
)


@dataclass(frozen=True)
class Holder:
    """A claim on a slot: the run, the claim's step key and the process it names."""

    run_id: str
    step_key: str
    host: str | None = None
    pid: int | None = None
    start: str | None = None
    parent_pid: int | None = None
    parent_start: str | None = None

    @classmethod
    def parse(cls, run_id: str, step_key: str) -> Holder:
        """The holder a claim names (host and pid unknown for a claim in another format)."""
        match = _STEP_KEY.match(step_key or "")
        if match is None:
            return cls(run_id, step_key)
        ppid = match["ppid"]
        return cls(
            run_id,
            step_key,
            match["host"],
            int(match["pid"]),
            _known(match["start"]),
            int(ppid) if ppid else None,
            _known(match["pstart"]),
        )

    @classmethod
    def this_process(cls, run_id: str, asset_key: AssetKey) -> Holder:
        """The holder for a claim made by this process."""
        host, pid, ppid = socket.gethostname(), os.getpid(), os.getppid()
        start, parent_start = process_start(pid), process_start(ppid)
        step_key = (
            f"bizon:{asset_key.to_user_string()} [{host} pid {pid} start {start or '-'}"
            f" parent {ppid} start {parent_start or '-'}]"
        )
        return cls(run_id, step_key, host, pid, start, ppid, parent_start)

    def process_gone(self) -> bool:
        """Whether this holder's process is certainly gone (only knowable on its own host)."""
        return self._gone(self.pid, self.start)

    def parent_gone(self) -> bool:
        """Whether the holder's parent process (its run worker) is certainly gone."""
        return self._gone(self.parent_pid, self.parent_start)

    def _gone(self, pid: int | None, start: str | None) -> bool:
        if pid is None or self.host != socket.gethostname():
            return False
        return not process_alive(pid, start)

    def describe(self) -> str:
        where = f" (pid {self.pid} on {self.host})" if self.pid is not None else ""
        return f"{self.run_id}{where}"


def _known(start: str | None) -> str | None:
    return None if start in (None, "-") else start


def process_start(pid: int) -> str | None:
    """The start time of a process, in clock ticks since boot (Linux); None if unknown."""
    stat = _stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether `pid` runs and, if `start` is given, is the process started then."""
    stat = _stat(pid)
    if stat is not None:
        state, started = stat
        return state not in {"Z", "X"} and (start is None or started == start)
    if Path("/proc/self/stat").exists():
        return False  # a /proc without this pid: no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from /proc/<pid>/stat, None where there is no such entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command name (in parentheses, may hold spaces): field 3 is the state,
    # field 22 the start time.
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


@contextmanager
def stream_slot(
    instance: DagsterInstance,
    slot: str,
    run_id: str,
    asset_key: AssetKey,
    log: logging.Logger = logger,
) -> Iterator[None]:
    """Hold the stream's slot while the block runs; StateError naming the holder if it is taken.

    A stale holder freed is reported on `log` (the run's `context.log` shows it in the UI).
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        yield  # the pipeline's concurrency pool is then the only guard
        return
    if storage.get_concurrency_info(slot).slot_count != 1:
        storage.set_concurrency_slots(slot, 1)
    me = Holder.this_process(run_id, asset_key)
    _acquire(instance, slot, me, log)
    try:
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, me.step_key)


def _acquire(instance: DagsterInstance, slot: str, me: Holder, log: logging.Logger) -> None:
    storage = instance.event_log_storage
    if storage.claim_concurrency_slot(slot, me.run_id, me.step_key).is_claimed:
        return
    live = []
    for holder in _holders(instance, slot, me):
        reason = _stale_reason(instance, holder)
        if reason is None:
            live.append(holder)
            continue
        log.warning(f"freeing slot {slot} held by Dagster run {holder.describe()}: {reason}")
        storage.free_concurrency_slot_for_step(holder.run_id, holder.step_key)
        _fail_orphaned_run(instance, holder, me)
    # Once more even without a stale holder: the holder may have just finished.
    if storage.claim_concurrency_slot(slot, me.run_id, me.step_key).is_claimed:
        return
    # A pending claim left behind would be handed the slot when it frees, and then
    # block every later run: drop it.
    storage.free_concurrency_slot_for_step(me.run_id, me.step_key)
    raise StateError(_refusal(slot, live))


def _holders(instance: DagsterInstance, slot: str, me: Holder) -> list[Holder]:
    """Every other claim on the slot, granted or pending."""
    info = instance.event_log_storage.get_concurrency_info(slot)
    claims = [(s.run_id, s.step_key) for s in info.claimed_slots]
    claims += [(p.run_id, p.step_key) for p in info.pending_steps]
    unique = dict.fromkeys(c for c in claims if c != (me.run_id, me.step_key))
    return [Holder.parse(run_id, step_key) for run_id, step_key in unique]


def _stale_reason(instance: DagsterInstance, holder: Holder) -> str | None:
    """Why the holder can no longer be syncing, or None if it may be."""
    run = instance.get_run_by_id(holder.run_id)
    if run is None:
        return "its run no longer exists"
    if run.is_finished:
        return f"its run ended ({run.status.value})"
    if holder.process_gone():
        return f"its process is gone (the run still shows {run.status.value}; terminate it)"
    return None


def _fail_orphaned_run(instance: DagsterInstance, holder: Holder, me: Holder) -> None:
    """Mark the holder's run failed when its process and its run worker are both gone."""
    run = instance.get_run_by_id(holder.run_id)
    if run is None or run.is_finished or not (holder.process_gone() and holder.parent_gone()):
        return
    instance.report_run_failed(
        run,
        f"bizon: the run's processes (pid {holder.pid} and its run worker pid "
        f"{holder.parent_pid} on {holder.host}) are gone; marked failed by run {me.run_id}",
    )


def _refusal(slot: str, live: list[Holder]) -> str:
    message = f"stream {slot.removeprefix('bizon/')} is already being synced by another Dagster run"
    if not live:
        return message
    holder = live[0]
    if holder.pid is not None and holder.host == socket.gethostname():
        return f"{message}, {holder.describe()}, which is still running; rerun once it ends"
    return (
        f"{message}, {holder.describe()}; if that run is dead, terminate it in the Dagster UI "
        f"(Runs > {holder.run_id} > Terminate, force termination) and rerun"
    )
