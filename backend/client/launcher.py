"""Starting and stopping a server process from a client (the add-on does this for its users).

The contract with the process: `<python> -m backend serve --bind ADDRESS [args]` prints one
"serving on ..." line when ready (we do not rely on it: readiness is an `info` answer), exits on
SIGTERM after answering or cancelling what it holds, and writes its errors to stderr, which goes
to `log_path` so a failed start can be explained."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from ..core.state import STATE_FOLDER
from . import protocol
from .client import Client, Request, ServerError


def free_loopback_address(host: str = "127.0.0.1") -> str:
    """tcp://HOST:PORT on a port the system has just handed out as free, for a server this process
    starts: two of them started at once (a demo beside a test run, two checkouts testing on one
    machine) never meet on a fixed port.  Another process may take the port before the server
    binds it; that server then stops with "already in use"."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"tcp://{host}:{probe.getsockname()[1]}"


def running_servers(folder: str | Path = STATE_FOLDER) -> list[dict]:
    """The servers on this machine that left a state file ({address, pid, protocol, ...}) and
    whose process is still alive, newest first."""
    found = []
    for path in Path(folder).glob("*.json"):
        try:
            state = json.loads(path.read_text())
            os.kill(int(state["pid"]), 0)     # signal 0: only asks whether the process exists
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(state)
    return sorted(found, key=lambda state: state.get("started", 0), reverse=True)


class ServerProcess:
    __slots__ = ("command", "address", "log_path", "process", "_client", "_probe", "_log")

    def __init__(self, *, python: str | list[str] = sys.executable, address: str = protocol.DEFAULT_ADDRESS,
                 extra_args: tuple[str, ...] = (), log_path: str | Path | None = None):
        """python: the interpreter that has the backend installed, or a command that runs one
        (["conda", "run", "-n", "faces", "python"])."""
        prefix = [python] if isinstance(python, str) else list(python)
        self.command = [*prefix, "-m", "backend", "serve", "--bind", address, *extra_args]
        self.address = address
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._client: Client | None = None
        self._probe: Request | None = None
        self._log: IO[bytes] | int | None = None

    def start(self, *, cwd: str | Path | None = None, env: dict | None = None) -> None:
        """Launch the process and return at once; `ready()` / `wait_ready()` tell when it answers."""
        if self.running:
            return
        # this start's log only: a failure quotes its own lines, never an earlier run's
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=self._log, start_new_session=True)
        self._client = Client(self.address, timeout=2.0)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> dict | None:
        """Non-blocking: the server's info once it answers, else None.  Raises ServerError if the
        process has exited."""
        if not self.running or self._client is None:
            raise ServerError("unavailable", f"the server process exited (code "
                                             f"{self.process.returncode if self.process else '?'})"
                                             + self._log_tail())
        if self._probe is None or (self._probe.finished and self._probe.state == "failed"):
            self._probe = self._client.submit("info")
        self._client.step()
        if self._probe.state == "done":
            return self._probe.result().header
        return None

    def wait_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.ready()
            if info is not None:
                return info
            time.sleep(0.05)
        self.stop()
        raise ServerError("unavailable", f"the server did not answer within {timeout:.0f} s" + self._log_tail())

    def stop(self, timeout: float = 15.0) -> int | None:
        """Blocking: `terminate()`, wait, and SIGKILL after `timeout`."""
        if not self.terminate() or self.process is None:
            return None
        deadline = time.monotonic() + timeout
        while not self.stopped(deadline):
            time.sleep(0.02)
        return self.process.returncode

    def stopped(self, deadline: float) -> bool:
        """Non-blocking, after `terminate()`: has the process exited?  SIGKILL once `deadline`
        (a time.monotonic() value) has passed.  The add-on steps this from a timer."""
        if self.exited():
            return True
        if time.monotonic() > deadline:
            self.kill()
        return False

    def terminate(self) -> bool:
        """Non-blocking: SIGTERM (the server answers or cancels what it holds, then exits; see
        `exited()`).  False when no process was started."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is None:
            return False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return True

    def exited(self) -> bool:
        """Non-blocking: has the process ended?  (Its log is closed once it has.)"""
        if self.process is None:
            return True
        if self.process.poll() is None:
            return False
        if self._log is not None and not isinstance(self._log, int):   # not DEVNULL
            self._log.close()
        self._log = None
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def _log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        return ": " + " | ".join(tail) if tail else ""
