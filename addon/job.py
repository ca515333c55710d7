"""Long work in the add-on, done one way (the shape of Blender's extension manager, bl_pkg).

A `Job` is work cut into non-blocking steps: `step()` does a little and says whether it is
finished, `done` / `total` / `status` say how far it is, `cancel()` stops it.  Nothing here
imports Blender: jobs.JobOperator runs a job in Blender (a modal timer in the UI, a loop in
background mode), a script or test calls `run_blocking()`.
"""
from __future__ import annotations

import time


class JobFailed(Exception):
    """A job cannot go on; the message is reported to the user as it is."""


class Job:
    """Subclasses implement `step()` (and `cancel()` when there is something to stop)."""

    title = "Working"          # what the status bar says the add-on is doing

    def __init__(self):
        self.done = 0
        self.total = 0
        self.status = ""        # the current phase, e.g. "starting the backend"

    def step(self) -> bool:
        """Advance without blocking for long; True once finished.  Raises JobFailed."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop: what was asked of the backend is cancelled there too."""

    def progress_text(self) -> str:
        count = f" {self.done}/{self.total}" if self.total else ""
        phase = f": {self.status}" if self.status else ""
        return f"Face Normals - {self.title}{phase}{count}  (Esc to cancel)"

    def run_blocking(self, poll_seconds: float = 0.02) -> None:
        """Background mode: the same steps, one after another, until finished."""
        while not self.step():
            time.sleep(poll_seconds)
