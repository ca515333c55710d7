"""A `batch` request (protocol.py): files on the server's disk run through backend/batch's local
path (batch.run.run_batch with a LocalPool: worker processes, each loading the model once) in a
thread of its own, so the server keeps answering estimates, pings and cancels meanwhile.

The thread talks to the main thread only through its own PUSH socket into the server's results
socket (ZeroMQ sockets are not shared between threads): progress messages, then one final reply,
the summary (kind "batch") or an error.  A cancel sets an event the run asks between photos.
"""
from __future__ import annotations

import threading
from pathlib import Path

import zmq

from ..batch import InputError, Settings, read_units
from ..batch.local import THREADS, BatchError, LocalPool, default_workers, photos_per_pass
from ..batch.manifest import NAME as MANIFEST
from ..batch.run import run_batch
from ..batch.video import VideoError, frame_count
from ..client import protocol


class BatchRequest:
    """One batch request running; `cancel()` stops it after the photos in flight."""

    def __init__(self, client: bytes, request_id: str, options: protocol.BatchOptions, *,
                 context: zmq.Context, results: str, weights: str, model: str, device: str, gpu: bool):
        self.client, self.request_id, self.options = client, request_id, options
        self.context, self.results = context, results
        self.settings = Settings(options.output, options.estimate, weights=weights, model=model, device=device,
                                 threads=0 if gpu else THREADS, photos_per_pass=photos_per_pass(gpu))
        self.workers = default_workers(gpu)
        self._cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"batch {request_id}", daemon=True)

    @property
    def key(self) -> tuple[bytes, str]:
        return self.client, self.request_id

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self._cancelled.set()

    def _run(self) -> None:
        out = self.context.socket(zmq.PUSH)
        out.connect(self.results)

        def send(header: dict) -> None:
            out.send_multipart([self.client, *protocol.encode({"id": self.request_id, **header})])

        def progress(done: int, failed: int, total: int) -> None:
            if not self._cancelled.is_set():
                send({"kind": "progress", "done": done, "total": total, "failed": failed})
        try:
            send(self._answer(progress))
        except Exception as error:   # noqa: BLE001 - a bug must cost this request, not the server
            send(protocol.error_header(self.request_id, "internal", f"{type(error).__name__}: {error}"))
        finally:
            out.close(linger=1000)

    def _answer(self, progress) -> dict:
        try:
            units = read_units(list(self.options.inputs), frame_count=frame_count)
            Path(self.options.output).mkdir(parents=True, exist_ok=True)
        except (InputError, VideoError, OSError) as error:
            return protocol.error_header(self.request_id, "bad_message", f"batch: {error}")
        try:
            summary = run_batch(units, self.settings, LocalPool(self.settings, self.workers), progress=False,
                                on_progress=progress, cancelled=self._cancelled.is_set, catch_interrupt=False)
        except (BatchError, OSError) as error:
            return protocol.error_header(self.request_id, "internal", str(error))
        if self._cancelled.is_set():
            return protocol.error_header(
                self.request_id, "cancelled", f"cancelled by the client after {summary.done} photos done and "
                f"{len(summary.failed)} failed; {summary.left} left (a batch into {self.options.output} resumes)")
        return {"kind": "batch", "summary": summary.to_json(), "manifest": str(Path(self.options.output) / MANIFEST)}
