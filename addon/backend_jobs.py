"""The jobs that talk to the backend (see jobs.py): connect (starting the backend when allowed),
stop it, and estimate photos.  Each step only polls sockets and processes, so the UI never
waits on the backend."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from . import environment, images
from .backend_process import GRACE_SECONDS
from .client import Batch, Request, ServerError
from .client.protocol import EstimateOptions
from .job import Job, JobFailed
from .link import LINK, explain

START_SECONDS = 120.0       # a model load on a slow machine; after that the start has failed
# A backend on this machine answers `info` in milliseconds: when there is none to start either,
# waiting the whole timeout (5 s) for one only delays "not set up"
NOT_SET_UP_PROBE_SECONDS = 1.0


class ConnectJob(Job):
    """Until a backend answers `info`: ask the configured address; when nobody answers and
    `start` allows, start `<Backend Python> -m backend serve` and wait for it."""

    title = "Connecting to the backend"

    def __init__(self, prefs, *, start: bool):
        super().__init__()
        self.prefs, self.start = prefs, start
        self._probe: Request | None = None
        self._asked_at = 0.0
        self._started_at: float | None = None

    def step(self) -> bool:
        if self._started_at is not None:
            return self._wait_for_start()
        client = LINK.configure(self.prefs.address, self.prefs.timeout)
        if self._probe is None:
            self.status = f"asking {self.prefs.address}"
            self._probe = client.submit("info")
            self._asked_at = time.monotonic()
        client.step()
        if not self._probe.finished:
            if self.start and time.monotonic() - self._asked_at > NOT_SET_UP_PROBE_SECONDS:
                self._refuse_when_not_set_up()
            return False
        try:
            LINK.connected(self._probe.result().header)
            return True
        except ServerError as error:
            LINK.disconnected(error, self.prefs.address)
        if not self.start:
            raise JobFailed(LINK.error)
        try:
            LINK.start_server(self.prefs)
        except ValueError as error:                 # the add-on's environment is not set up
            LINK.stop_server()
            raise JobFailed(str(error)) from None
        except OSError as error:                    # e.g. a Backend Python that does not exist
            LINK.stop_server()
            raise JobFailed(f"Could not start the backend with '{self.prefs.python_command}': "
                            f"{error.strerror or error}. Check Backend Python in the add-on preferences, "
                            f"or choose Backend: Set Up by the Add-on") from None
        self.title, self.status = "Starting the backend", "loading the model"
        self._started_at = time.monotonic()
        return False

    def _refuse_when_not_set_up(self) -> None:
        """Nothing to start (the add-on's environment is not set up, e.g. just removed) and nobody
        answered at once: say so now rather than after the whole timeout."""
        try:
            environment.backend_python(self.prefs)
        except ValueError as error:
            self.cancel()
            raise JobFailed(str(error)) from None

    def _wait_for_start(self) -> bool:
        assert self._started_at is not None
        try:
            if LINK.server_ready(self.prefs):
                return True
        except ServerError as error:
            LINK.stop_server()
            raise JobFailed(f"Could not start the backend: {error}") from None
        if time.monotonic() - self._started_at > START_SECONDS:
            LINK.stop_server()
            raise JobFailed(f"The backend did not start within {START_SECONDS:.0f} s")
        return False

    def cancel(self) -> None:
        if self._probe is not None and LINK.client is not None:
            LINK.client.abandon(self._probe)


class StopJob(Job):
    """SIGTERM to the backend the add-on started, then wait for it to exit (SIGKILL after the grace)."""

    title = "Stopping the backend"

    def __init__(self, grace: float = GRACE_SECONDS):
        super().__init__()
        self._stopping = LINK.stopping(grace)

    def step(self) -> bool:
        return self._stopping.step()


ASSETS = ("albedo", "height", "light")     # asked for beside normal and mask when the server has them


def wanted_outputs(info: dict | None, assets) -> tuple[str, ...] | None:
    """The outputs to ask a server for: normal, mask and those of `assets` it announces; None (the
    normal and mask every server sends) for a server from before outputs, or when none is wanted."""
    offered = set((info or {}).get("outputs", ()))
    extra = tuple(name for name in ASSETS if name in assets and name in offered)
    return ("normal", "mask", *extra) if extra else None


class EstimateJob(Job):
    """Photos -> normal maps (and the assets asked for: albedo, height, light): connect (or start)
    the backend, then one request per photo; the results stay in `batch.results` for
    `store_estimates` (nothing in Blender changes before)."""

    title = "Estimating"

    def __init__(self, prefs, sources: list[tuple[str, object, str | None]], *, detect: bool,
                 assets=ASSETS):
        """sources: (name, payload: file bytes or pixels, folder to save beside or None)."""
        super().__init__()
        self.prefs, self.sources, self.assets = prefs, sources, set(assets)
        self.options = EstimateOptions(detect=detect, convention=prefs.convention.lower(), mask=True)
        self.connect: ConnectJob | None = (None if LINK.connected_to(prefs.address)
                                           else ConnectJob(prefs, start=prefs.auto_start))
        self.batch: Batch | None = None
        self.total = len(sources)

    def step(self) -> bool:
        if self.connect is not None:
            if not self.connect.step():
                self.status = self.connect.status
                return False
            self.connect = None
        client = LINK.configure(self.prefs.address, self.prefs.timeout)
        if self.batch is None:
            self.status = f"{len(self.sources)} photo{'s' * (len(self.sources) != 1)}"
            self.options = dataclasses.replace(self.options, outputs=wanted_outputs(LINK.info, self.assets))
            self.batch = client.submit_batch(self.options, [payload for _, payload, _ in self.sources])
        client.step()
        self.done = self.batch.done
        if self.batch.finished and self.batch.error is not None:      # the server is gone: all failed
            LINK.disconnected(self.batch.error, self.prefs.address)
            raise JobFailed(explain(self.batch.error, self.prefs.address, self.sources[0][0]))
        return self.batch.finished

    def cancel(self) -> None:
        if self.connect is not None:
            self.connect.cancel()
        if self.batch is not None and LINK.client is not None:
            LINK.client.abandon(self.batch)


def store_estimates(job: EstimateJob, save_mode: str) -> tuple[list[str], list[str], list[str]]:
    """Make the normal-map (and mask) images of a finished EstimateJob: (made image names,
    one message per photo that failed, the backend's warnings about the maps made, e.g. no
    person in a photo estimated with Detect Faces off)."""
    assert job.batch is not None and job.batch.finished
    made, failed, warnings = [], [], []
    for (name, _, folder), result in zip(job.sources, job.batch.results):
        assert result is not None           # a finished batch has every result
        if "error" in result:
            failed.append(explain(result["error"], job.prefs.address, name))
            continue
        warnings += [f"'{name}': {warning}" for warning in result.get("warnings", [])]
        height, width = result["normals"].shape[:2]
        centres = [] if result["camera_space"] else [(x / width, y / height) for x, y in result["centres"]]
        step = images.shrink_step(result["normals"], job.prefs.max_size)
        normals, mask = images.limit_size(result["normals"], result["mask"], job.prefs.max_size)
        beside = folder if save_mode == "BESIDE" and folder else None
        normal_image, _ = images.store_results(name, normals, mask, save_beside=beside, view_centres=centres)
        images.store_assets(name, albedo=_every(result.get("albedo"), step), height=_every(result.get("height"), step),
                            light=result.get("light"), photo_rows=height, save_beside=beside)
        made.append(normal_image.name)
    return made, failed, warnings


def _every(array, step: int):
    """Every step-th pixel of a map (as limit_size shrinks the normals), float32, or None."""
    return None if array is None else np.asarray(array[::step, ::step], np.float32)
