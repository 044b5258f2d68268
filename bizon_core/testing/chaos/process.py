"""A sync as a subprocess in its own process group: started, watched, killed, waited for."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Exit code recorded for a run the harness killed with SIGKILL.
KILLED = -signal.SIGKILL


@dataclass(frozen=True)
class Outcome:
    """How a sync process ended."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    #: The harness gave up waiting (`exit_code` is then KILLED).
    timed_out: bool = False
    #: The line that made the harness stop it early (a refusal it will not get over).
    refused: str | None = None

    @property
    def label(self) -> str:
        """The exit code as the table shows it: 0, 1, 2, 130, `kill`, `timeout`, `refused`."""
        if self.timed_out:
            return "timeout"
        if self.refused is not None:
            return "refused"
        return "kill" if self.exit_code == KILLED else str(self.exit_code)

    def last_error(self) -> str:
        """The last line of stderr that says what went wrong, for a report."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for line in reversed(lines):
            if "error" in line.lower() or "fail" in line.lower() or "already" in line:
                return line[:300]
        return lines[-1][:300] if lines else ""


class SyncProcess:
    """`argv` started in a new session (its own process group), its output collected.

    `refuse_on`: substrings of a stderr line after which waiting is pointless (the run
    retries a refusal it cannot get over); the group is then killed and `Outcome.refused`
    holds the line. `on_line` sees every stderr line as it comes.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        refuse_on: tuple[str, ...] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.refuse_on = refuse_on
        self.on_line = on_line
        self.refused: str | None = None
        self._stop = threading.Event()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._out), daemon=True),
            threading.Thread(
                target=self._read, args=(self.process.stderr, self._err, True), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole process group (the run and every process it started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.kill)
        timer.daemon = True
        timer.start()
        return timer

    def wait(self, timeout: float) -> Outcome:
        """Wait for the end, at most `timeout` seconds (then the group is killed)."""
        deadline = self.started + timeout
        timed_out = False
        while self.process.poll() is None:
            if self._stop.wait(0.05) or time.monotonic() > deadline:
                timed_out = not self._stop.is_set()
                self.kill()
                self.process.wait(10)
        # The group may outlive its leader (a Dagster step process): make sure it is gone.
        self.kill()
        for reader in self._readers:
            reader.join(5)
        return Outcome(
            exit_code=self.process.returncode,
            stdout="".join(self._out),
            stderr="".join(self._err),
            seconds=time.monotonic() - self.started,
            timed_out=timed_out,
            refused=self.refused,
        )

    def _read(self, stream: IO[bytes], lines: list[str], watch: bool = False) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            lines.append(line)
            if watch and self.on_line is not None:
                self.on_line(line)
            if watch and self.refused is None and any(s in line for s in self.refuse_on):
                # A Dagster log line ends with its message after the last " - ".
                self.refused = line.strip().rsplit(" - ", 1)[-1][:300]
                self._stop.set()
        stream.close()
