"""The add-on's one connection to the backend: a client, and the server process when the add-on
started it.  Nothing here blocks but `stop_server` (for unregistering): the jobs in
backend_jobs.py drive it step by step."""
from __future__ import annotations

import os
import tempfile

from . import environment
from .backend_process import GRACE_SECONDS, Stopping, launch
from .client import Client, ServerError, ServerUnavailable
from .client.launcher import ServerProcess
from .core.state import file_safe

ADVICE = ("start it from the Face Normals panel (or run `python -m backend serve`), or check the "
          "backend address in the add-on preferences")


class BackendLink:
    __slots__ = ("client", "process", "info", "error", "_settings")

    def __init__(self):
        self.client: Client | None = None
        self.process: ServerProcess | None = None
        self.info: dict | None = None       # the server's last `info` answer
        self.error = ""                      # why the last attempt failed, for the panels
        self._settings = None

    def configure(self, address: str, timeout: float) -> Client:
        if self.client is None or self._settings != (address, timeout):
            if self._settings is not None and self._settings[0] != address:
                self.info = None               # what answered there is not what answers here
            self.close_client()
            self.client = Client(address, timeout=timeout)
            self._settings = (address, timeout)
        return self.client

    def connected_to(self, address: str) -> bool:
        """Whether the last word from `address` was an answer (not a failure)."""
        return self.info is not None and self._settings is not None and self._settings[0] == address

    @property
    def status(self) -> str:
        if self.info:
            model = self.info.get("model", {})
            return f"Connected: {self.info.get('device', '?')}, model {model.get('version', '?')}"
        if self.process is not None and self.process.running:
            return "Starting the backend..."
        return "Not connected"

    def connected(self, info: dict) -> None:
        self.info, self.error = info, ""

    def disconnected(self, error: ServerError, address: str) -> None:
        self.info, self.error = None, _explain(error, address)

    def start_server(self, prefs, python: list[str] | None = None) -> None:
        """Launch `<python> -m backend serve` and return at once (see `server_ready`).  python:
        default the Backend Python the preferences choose (environment.backend_python; raises
        ValueError with what to do when that is the add-on's environment and it is not set up)."""
        if self.process is not None and self.process.running:
            return
        python = python or environment.backend_python(prefs)
        log = os.path.join(tempfile.gettempdir(), f"face-normals-backend-{file_safe(prefs.address)}.log")
        self.process = launch(prefs, python, log)

    def adopt(self, process: ServerProcess, info: dict) -> None:
        """Take over a backend started elsewhere (Set Up Backend's), which has answered `info`:
        stopped with the add-on from now on."""
        self.process = process
        self.connected(info)

    def server_ready(self, prefs) -> bool:
        """Non-blocking: has the server the add-on started answered yet?  Raises if it died."""
        if self.process is None:
            return False
        info = self.process.ready()
        if info is not None:
            self.connected(info)
            self.configure(prefs.address, prefs.timeout)
        return info is not None

    def stopping(self, grace: float = GRACE_SECONDS) -> Stopping:
        """Stop the server the add-on started without blocking (step the result): forgotten once
        it has exited."""
        return Stopping(self.process, grace, then=self.forget_server)

    def stop_server(self) -> None:
        """Blocking (unregistering the add-on); the operators use backend_jobs.StopJob."""
        if self.process is not None:
            self.process.stop(GRACE_SECONDS)
        self.forget_server()

    def forget_server(self) -> None:
        self.process = None
        self.info = None

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def close(self) -> None:
        self.stop_server()
        self.close_client()


def _explain(error: ServerError, address: str) -> str:
    if isinstance(error, ServerUnavailable):
        return f"The Face Normals backend is not answering at {address}: {ADVICE}"
    return str(error)


def explain(error: ServerError, address: str, source: str = "") -> str:
    """A sentence that says what went wrong and what to do."""
    where = f"'{source}': " if source else ""
    if isinstance(error, ServerUnavailable):
        return _explain(error, address)
    if error.code == "no_face":
        return f"{where}no face found. If the photo is already a cropped face, untick 'Detect Faces'"
    if error.code == "bad_image":
        return f"{where}the backend could not read this image ({error})"
    if error.code == "cancelled":
        return "Cancelled"
    return f"{where}{error}"


LINK = BackendLink()
