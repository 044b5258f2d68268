"""Kills the whole process group from inside a sync, at a chosen point of the destination.

The harness sets `BIZON_CHAOS_KILL` (a `Kill` as JSON) and puts `site/` on PYTHONPATH; its
`sitecustomize` calls `install_from_env`, which wraps `write` and `commit` of every
destination class defined afterwards. The code under test is not changed: only the moment
of the SIGKILL is chosen, as precisely as a kill from outside cannot.

- `write`: during the `nth` call of `write` (`delay` seconds after it starts);
- `commit`: `delay` seconds after `commit` starts (inside it, or just after it returned);
- `after_commit`: as `commit` returns, before the cursor is moved.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bizon_core.testing.chaos.kills import KILL_ENV, Kill

#: The folder to put on PYTHONPATH: its `sitecustomize` calls `install_from_env`.
SITE_DIR = Path(__file__).resolve().parent / "site"
_inside = threading.local()


def install_from_env() -> None:
    """Arm the kill described by `BIZON_CHAOS_KILL`, if it names a destination phase."""
    kill = Kill.from_json(os.environ[KILL_ENV])
    if kill.phase in ("write", "commit", "after_commit"):
        install(kill)


def install(kill: Kill) -> None:
    """Wrap `write`/`commit` of destination classes defined from now on, to kill as `kill` says."""
    from bizon_core.destination.destination import AbstractDestination

    writes = [0]

    def before_write() -> None:
        writes[0] += 1
        if kill.phase == "write" and writes[0] == kill.nth:
            kill_group_after(kill.delay)

    def before_commit() -> None:
        if kill.phase == "commit":
            kill_group_after(kill.delay)

    def after_commit() -> None:
        if kill.phase == "after_commit":
            kill_group_after(0)

    def armed(cls: type, **kwargs: Any) -> None:
        cls.write = _wrap(cls.write, before_write, None)
        cls.commit = _wrap(cls.commit, before_commit, after_commit)

    AbstractDestination.__init_subclass__ = classmethod(armed)  # type: ignore[assignment]


def kill_group_after(seconds: float) -> None:
    """SIGKILL this process's group now, or from a timer thread `seconds` from now."""
    if seconds <= 0:
        os.killpg(os.getpgrp(), signal.SIGKILL)
        return
    timer = threading.Timer(seconds, os.killpg, (os.getpgrp(), signal.SIGKILL))
    timer.daemon = True
    timer.start()


def _wrap(
    method: Callable[..., Any], before: Callable[[], None], after: Callable[[], None] | None
) -> Callable[..., Any]:
    """`method` with hooks around its outermost call (a subclass's `super()` call is inside)."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        active: set[str] = _inside.__dict__.setdefault("names", set())
        if name in active:
            return method(self, *args, **kwargs)
        active.add(name)
        try:
            before()
            result = method(self, *args, **kwargs)
            if after is not None:
                after()
            return result
        finally:
            active.discard(name)

    return wrapper
