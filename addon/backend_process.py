"""The backend process the add-on starts: the one place that builds its serve command from the
preferences and stops it without blocking Blender (SIGTERM, then SIGKILL after a grace period).
link.BackendLink holds the process it started or adopted (from Set Up Backend); the jobs that
stop or replace it step a `Stopping`.  The process itself is the client's ServerProcess
(client/launcher.py); nothing here imports Blender."""
from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path

from .client.launcher import ServerProcess

GRACE_SECONDS = 15.0      # the server answers or cancels what it holds, then exits


def launch(prefs, python: str | list[str], log_path: str | Path) -> ServerProcess:
    """Start `<python> -m backend serve` at the preferences' address, with their model, extra
    arguments and idle timeout, and return at once (`ServerProcess.ready()` says when it answers)."""
    extra = [] if prefs.model == "AUTO" else ["--model", prefs.model.lower()]
    extra += shlex.split(prefs.backend_args)
    if prefs.idle_timeout > 0:
        extra += ["--idle-timeout", str(prefs.idle_timeout)]
    process = ServerProcess(python=python, address=prefs.address, extra_args=tuple(extra), log_path=log_path)
    process.start()
    return process


class Stopping:
    """Stop a process without blocking: SIGTERM now; `step()` is True once it has exited (and
    calls `then` once), and sends SIGKILL once `grace` seconds have passed.  Nothing to stop
    (None) is stopped at once."""

    __slots__ = ("process", "_deadline", "_then")

    def __init__(self, process: ServerProcess | None, grace: float = GRACE_SECONDS,
                 then: Callable[[], None] | None = None):
        self.process = process
        self._deadline = time.monotonic() + grace
        self._then = then
        if process is not None:
            process.terminate()

    def step(self) -> bool:
        if self.process is not None and not self.process.stopped(self._deadline):
            return False
        if self._then is not None:
            self._then()
            self._then = None
        return True
