"""The service loop.

The main thread owns the ROUTER socket: it checks every request against the protocol and the
limits (protocol.parse_request, then the sizes of encoded images read from their headers),
answers `info`, `ping` and `cancel` at once, queues estimates (or answers `busy` when the
queue is full), starts a `batch` request in a thread of its own (batch_requests.py), forwards
what the worker thread and batch threads produce, and sends heartbeats for outstanding requests
while the worker (or the batch's thread) is alive and moving, so a long batch never starves a
ping and a stuck worker is never hidden.  One worker thread runs the model: it takes the estimates waiting in
the queue (within an image and pixel budget), puts all their face crops through the network
together, and replies to each request on its own.  Nothing one request does may end the process
or the worker: a failure inside a batch answers that batch `internal`; a worker that dies anyway
is replaced (its requests answered `internal`), and after `MAX_WORKER_DEATHS` the server stops
with one log line.
"""
from __future__ import annotations

import collections
import dataclasses
import errno
import functools
import json
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import zmq

from .. import __version__
from ..client import protocol
from ..core.state import state_file as default_state_file
from ..client.protocol import Limits, ProtocolError
from ..core.options import OUTPUTS, EstimateOptions
from ..estimator import Estimator, ImageError
from ..estimator.image_io import ImageTooLarge, image_size
from ..estimator.pipeline import Photo
from ..estimator.networks import count_parameters
from .batch_requests import BatchRequest
from .security import CurveKeys, is_loopback

logger = logging.getLogger(__name__)

MAX_WORKER_DEATHS = 5       # replaced this often, the fault is not in one request: stop
STALL_SECONDS = 60.0        # a worker silent this long is stuck: heartbeats stop


class ServerStartError(RuntimeError):
    """The server cannot start: the address is taken, or unsafe without keys."""


@dataclasses.dataclass
class Work:
    """An estimate request waiting for, or in, the worker."""
    client: bytes
    request_id: str
    options: EstimateOptions
    payloads: list
    pixels: int                 # all its images together, from shapes and file headers
    received: float

    @property
    def key(self) -> tuple[bytes, str]:
        return self.client, self.request_id


class WorkQueue:
    """Estimates waiting for the worker, oldest first.  Thread-safe; the main thread may take a
    cancelled one out before the worker sees it."""

    def __init__(self):
        self._waiting: collections.deque[Work] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, work: Work) -> None:
        with self._changed:
            self._waiting.append(work)
            self._changed.notify()

    def remove(self, key: tuple[bytes, str]) -> Work | None:
        with self._changed:
            for work in self._waiting:
                if work.key == key:
                    self._waiting.remove(work)
                    return work
        return None

    def take_batch(self, max_images: int, max_pixels: int) -> list[Work] | None:
        """Block for the oldest estimate, then add others already waiting while the batch stays
        within max_images and max_pixels; None once closed."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            if not self._waiting:
                return None
            batch = [self._waiting.popleft()]
            images, pixels = len(batch[0].payloads), batch[0].pixels
            while self._waiting:
                more = self._waiting[0]
                if images + len(more.payloads) > max_images or pixels + more.pixels > max_pixels:
                    break
                batch.append(self._waiting.popleft())
                images, pixels = images + len(more.payloads), pixels + more.pixels
            return batch

    def close(self) -> list[Work]:
        """No more work: wake the worker to end, and hand back what was still waiting."""
        with self._changed:
            self._closed = True
            left, self._waiting = list(self._waiting), collections.deque()
            self._changed.notify_all()
            return left


class Server:
    def __init__(self, estimator: Estimator, bind: str = protocol.DEFAULT_ADDRESS, *,
                 curve: CurveKeys | None = None, limits: Limits = Limits(), max_batch: int = 8,
                 idle_timeout: float | None = None, state_file: Path | None = None):
        if not is_loopback(bind) and curve is None:
            raise ServerStartError(
                f"refusing to bind {bind} without authentication: it can be reached from other "
                f"machines. Bind a loopback address (tcp://127.0.0.1:PORT), or give CURVE keys "
                f"(--curve-secret SERVER.key_secret --curve-clients FOLDER; make them with "
                f"`python -m backend keys FOLDER`)")
        self.estimator = estimator
        estimator.max_pixels = limits.max_pixels     # while it serves, the server's limits are its own
        estimator.crops_per_pass = max_batch
        self.bind = bind
        self.limits = limits
        self.max_batch = max_batch
        self.idle_timeout = idle_timeout
        self.state_file = state_file or default_state_file(bind)
        self._wrote_state = False
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.authenticator = curve.apply(self.context, self.router) if curve else None
        try:
            self.router.bind(bind)
        except zmq.ZMQError as error:
            self.close()
            if error.errno == errno.EADDRINUSE:
                raise ServerStartError(f"{bind} is already in use: is another server running? "
                                       f"(see {self.state_file})") from None
            raise ServerStartError(f"cannot bind {bind}: {error}") from None
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.results = self.context.socket(zmq.PULL)
        self.results.bind(f"inproc://results-{id(self)}")
        self.queue = WorkQueue()
        self.outstanding: dict[tuple[bytes, str], float] = {}   # -> when the client last heard
        self.held_bytes: dict[tuple[bytes, str], int] = {}      # -> the size of its payloads
        self.lock = threading.Lock()          # guards the three below, shared with the worker
        self.cancelled: set[tuple[bytes, str]] = set()
        self.in_work: list[Work] = []          # the worker's current batch
        self.worker_beat = time.monotonic()    # when the worker last moved
        self.worker = threading.Thread()       # replaced by a running one in serve_forever
        self.worker_deaths = 0
        self.cancelled_requests = 0            # cancels that found their request still held here
        self.batches: dict[tuple[bytes, str], BatchRequest] = {}   # running in threads of their own
        self.stopping = threading.Event()
        self.model_info = {"version": __version__, "weights": str(estimator.weights),
                           "name": estimator.model_name,
                           "parameters": count_parameters(estimator.model),
                           "input_size": estimator.size}

    # --- lifecycle -------------------------------------------------------------------------
    def serve_forever(self) -> None:
        if threading.current_thread() is threading.main_thread():   # Python's rule for handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stopping.set())
        self._start_worker()
        self._write_state()
        logger.info("serving on %s (device %s, protocol %d); state file %s", self.address,
                 self.estimator.device, protocol.PROTOCOL_VERSION, self.state_file)
        last_request = time.monotonic()
        try:
            poller = zmq.Poller()
            poller.register(self.router, zmq.POLLIN)
            poller.register(self.results, zmq.POLLIN)
            while not self.stopping.is_set():
                events = dict(poller.poll(100))
                if self.router in events:
                    self._receive()
                    last_request = time.monotonic()
                if self.results in events:
                    self._forward_results()
                self._supervise()
                self._heartbeats()
                if (self.idle_timeout and not self.outstanding
                        and time.monotonic() - last_request > self.idle_timeout):
                    logger.info("idle for %.0f s: stopping", self.idle_timeout)
                    break
            self._drain()
        finally:
            self.close()

    def _drain(self, grace: float = 10.0) -> None:
        """Stop: queued work is answered 'shutting_down', the batch in flight may finish; batch
        requests are cancelled (their photos in flight finish and are recorded)."""
        for work in self.queue.close():
            self._answer_error(work, "shutting_down", "the server is shutting down; not started")
        for batch in self.batches.values():
            batch.cancel()
        deadline = time.monotonic() + grace
        while ((self.worker.is_alive() or any(b.thread.is_alive() for b in self.batches.values()))
               and time.monotonic() < deadline):
            if self.results.poll(100):
                self._forward_results()
        while self.results.poll(0):
            self._forward_results()

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        if self._wrote_state:
            try:   # only our own: a later server on the same address may have replaced it
                if json.loads(self.state_file.read_text()).get("pid") == os.getpid():
                    self.state_file.unlink()
            except (OSError, ValueError):
                pass
        self.context.destroy(linger=1000)

    def _write_state(self) -> None:
        """The state file, written whole or not at all (a reader never sees half of it)."""
        folder = self.state_file.parent
        folder.mkdir(parents=True, exist_ok=True)
        state = {"address": self.address, "pid": os.getpid(), "protocol": protocol.PROTOCOL_VERSION,
                 "started": time.time(), "device": str(self.estimator.device)}
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".state-", suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(state, out)
        os.replace(temporary, self.state_file)
        self._wrote_state = True

    # --- supervision -----------------------------------------------------------------------
    def _start_worker(self) -> None:
        self.worker_beat = time.monotonic()
        self.worker = threading.Thread(target=self._work, name="estimator", daemon=True)
        self.worker.start()

    def _supervise(self) -> None:
        """A dead worker: answer what it held, then replace it, or stop if it keeps dying."""
        if self.worker.is_alive() or self.stopping.is_set():
            return
        self.worker_deaths += 1
        with self.lock:
            lost, self.in_work = self.in_work, []
        for work in lost:
            self._answer_error(work, "internal", "the estimator failed on this request; it was "
                                                 "restarted, try again")
        if self.worker_deaths >= MAX_WORKER_DEATHS:
            logger.error("the estimator worker died %d times: stopping the server", self.worker_deaths)
            self.stopping.set()
            return
        logger.error("the estimator worker died (%d of %d allowed): restarted", self.worker_deaths,
                  MAX_WORKER_DEATHS - 1)
        self._start_worker()

    def _worker_moving(self) -> bool:
        return self.worker.is_alive() and time.monotonic() - self.worker_beat < STALL_SECONDS

    # --- main thread -----------------------------------------------------------------------
    def _send(self, client: bytes, header: dict, payloads=()) -> None:
        self.router.send_multipart([client, *protocol.encode(header, payloads)], copy=False)

    def _answer_error(self, work: Work, code: str, message: str) -> None:
        self._release(work.key)
        self._send(work.client, protocol.error_header(work.request_id, code, message))

    def _release(self, key: tuple[bytes, str]) -> None:
        """A request has had its last reply."""
        self.outstanding.pop(key, None)
        self.held_bytes.pop(key, None)
        with self.lock:
            self.cancelled.discard(key)

    def _receive(self) -> None:
        frames = self.router.recv_multipart(copy=False)
        client, frames = frames[0].bytes, frames[1:]
        try:
            self._handle(client, protocol.parse_request(frames, self.limits))
        except ProtocolError as error:
            self._send(client, protocol.error_header(_salvage_id(frames), error.code, str(error)))
        except Exception as error:   # a bug must cost one request, not the server
            logger.exception("failed to handle a request")
            self._send(client, protocol.error_header(
                _salvage_id(frames), "internal", f"{type(error).__name__}: {error}"))

    def _handle(self, client: bytes, message: protocol.Message) -> None:
        kind, request_id = message.kind, message.id
        if kind == "ping":
            self._send(client, {"id": request_id, "kind": "pong"})
        elif kind == "info":
            self._send(client, self.info(request_id))
        elif kind == "cancel":
            self._send(client, {"id": request_id, "kind": "cancelled",
                                "found": self._cancel((client, message.options["target"]))})
        elif kind == "batch":
            self._accept_batch(client, message)
        else:
            self._accept_estimate(client, message)

    def _accept_estimate(self, client: bytes, message: protocol.Message) -> None:
        if self.stopping.is_set():
            raise ProtocolError("shutting_down", "the server is shutting down")
        request_id: str = message.header["id"]       # parse_request made sure of both
        options: EstimateOptions = message.header["options"]
        key = (client, request_id)
        if key in self.outstanding:
            raise ProtocolError("bad_message", f"request id {request_id!r} is already in use")
        pixels = [self._pixels(payload) for payload in message.payloads]
        protocol.check_request_size(pixels, self.limits, options)
        size = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in message.payloads)
        if size > self.limits.max_queued_bytes:
            raise ProtocolError("too_large", f"the request's images take {size / 2 ** 20:.0f} MB, over "
                                             f"the limit of {self.limits.max_queued_bytes / 2 ** 20:.0f} MB")
        mine = sum(1 for c, _ in self.outstanding if c == client)
        if (mine >= self.limits.max_queued or len(self.outstanding) >= self.limits.max_queued_total
                or sum(self.held_bytes.values()) + size > self.limits.max_queued_bytes):
            raise ProtocolError("busy", f"the server is busy ({len(self.outstanding)} requests "
                                        f"waiting, {mine} of them yours): try again in a moment")
        self.outstanding[key] = time.monotonic()
        self.held_bytes[key] = size
        self.queue.put(Work(client, request_id, options, message.payloads, sum(pixels), time.monotonic()))

    def _accept_batch(self, client: bytes, message: protocol.Message) -> None:
        # a batch reads and writes this machine's disk: safe because __init__ starts a server
        # only on loopback or with CURVE keys, so whoever sends one is here or holds a key
        if self.stopping.is_set():
            raise ProtocolError("shutting_down", "the server is shutting down")
        key = (client, message.header["id"])
        if key in self.outstanding:
            raise ProtocolError("bad_message", f"request id {key[1]!r} is already in use")
        if self.batches:
            raise ProtocolError("busy", "the server is running another batch: one at a time (try again "
                                        "when it ends)")
        batch = BatchRequest(client, key[1], message.header["options"], context=self.context,
                             results=f"inproc://results-{id(self)}", weights=str(self.estimator.weights),
                             model=self.estimator.model_name, device=str(self.estimator.device),
                             gpu=self.estimator.device.type == "cuda")
        self.outstanding[key] = time.monotonic()
        self.batches[key] = batch
        batch.start()

    def _pixels(self, payload) -> int:
        """An image's pixel count before anything is decoded (too_large over the limit); an
        unreadable file counts none here and fails alone in the worker."""
        if not isinstance(payload, bytes):
            return payload.shape[0] * payload.shape[1]
        try:
            width, height = image_size(payload, max_pixels=self.limits.max_pixels)
        except ImageTooLarge as error:
            raise ProtocolError("too_large", str(error)) from None
        except ImageError:
            return 0
        return width * height

    def _cancel(self, key: tuple[bytes, str]) -> bool:
        """Queued work is dropped and answered at once; work in progress stops between images."""
        if key not in self.outstanding:
            return False
        self.cancelled_requests += 1
        if key in self.batches:
            self.batches[key].cancel()
            return True
        waiting = self.queue.remove(key)
        if waiting is not None:
            self._answer_error(waiting, "cancelled", "cancelled by the client")
        else:
            with self.lock:
                self.cancelled.add(key)
        return True

    def info(self, request_id: str | None) -> dict:
        return {"id": request_id, "kind": "info", "server": __version__,
                "model": self.model_info, "device": str(self.estimator.device),
                "address": self.address, "pid": os.getpid(),
                "limits": {**self.limits.to_dict(), "max_batch": self.max_batch},
                "outputs": list(OUTPUTS),
                "queued": len(self.queue), "outstanding": len(self.outstanding),
                "worker_deaths": self.worker_deaths, "dropped_crops": self.estimator.dropped_crops,
                "cancelled_requests": self.cancelled_requests}

    def _forward_results(self) -> None:
        while self.results.poll(0):
            frames = self.results.recv_multipart(copy=False)
            client = frames[0].bytes
            header = json.loads(frames[1].bytes)
            key = (client, header.get("id"))
            if header["kind"] in ("result", "error", "batch"):
                self._release(key)
                self.batches.pop(key, None)
            elif key in self.outstanding:
                self.outstanding[key] = time.monotonic()
            self.router.send_multipart(frames, copy=False)

    def _heartbeats(self) -> None:
        """'Your request is being worked on, or waits behind work that moves' - never only
        'the socket is alive': a stuck or dead worker lets the clients' timeouts run."""
        moving = self._worker_moving()
        now = time.monotonic()
        with self.lock:
            working = {work.key for work in self.in_work}
        for key, last in list(self.outstanding.items()):
            if now - last < protocol.HEARTBEAT_SECONDS:
                continue
            batch = self.batches.get(key)
            if batch is not None:       # a batch's own thread: alive is moving (its workers are watched by it)
                if not batch.thread.is_alive():
                    continue
            elif not moving:
                continue
            self._send(key[0], {"id": key[1], "kind": "heartbeat",
                                "state": "working" if key in working or batch is not None else "queued"})
            self.outstanding[key] = now

    # --- worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        out = self.context.socket(zmq.PUSH)
        out.connect(f"inproc://results-{id(self)}")
        try:
            while True:
                batch = self.queue.take_batch(self.max_batch, self.limits.max_request_pixels)
                if batch is None:
                    return
                with self.lock:
                    self.in_work = batch
                try:
                    self._estimate(batch, out)
                except Exception as error:   # answer the batch; the worker goes on
                    logger.exception("estimating a batch failed")
                    for work in batch:
                        header = protocol.error_header(work.request_id, "internal",
                                                       f"{type(error).__name__}: {error}")
                        out.send_multipart([work.client, *protocol.encode(header)])
                with self.lock:
                    self.in_work = []
                self._beat()
        finally:
            out.close(linger=1000)

    def _estimate(self, batch: list[Work], out: zmq.Socket) -> None:
        """Every image of every request in the batch through the estimator together; each
        request's progress and reply as its images come out.  A request cancelled meanwhile is
        answered 'cancelled' (the estimator skipped what it could of its work)."""
        photos = [Photo(payload, work.options, functools.partial(self._is_cancelled, work))
                  for work in batch for payload in work.payloads]
        results = self.estimator.estimate(photos, heartbeat=self._beat)
        for work in batch:
            summaries: list[dict] = []
            payloads: list = []
            for done in range(1, len(work.payloads) + 1):
                result = next(results)
                summaries.append(result.summary())
                payloads += result.maps().values()     # in the order its summary names them
                if len(work.payloads) > 1 and not self._is_cancelled(work):
                    out.send_multipart([work.client, *protocol.encode(
                        {"id": work.request_id, "kind": "progress", "done": done,
                         "total": len(work.payloads)})])
            if self._is_cancelled(work):
                header = protocol.error_header(work.request_id, "cancelled", "cancelled by the client")
                out.send_multipart([work.client, *protocol.encode(header)])
                continue
            header = {"id": work.request_id, "kind": "result", "results": summaries,
                      "seconds": time.monotonic() - work.received}
            out.send_multipart([work.client, *protocol.encode(header, payloads)], copy=False)

    def _beat(self) -> None:
        self.worker_beat = time.monotonic()

    def _is_cancelled(self, work: Work) -> bool:
        with self.lock:
            return work.key in self.cancelled


def _salvage_id(frames) -> str | None:
    """The request id of a message that failed to parse, when its header still has one."""
    try:
        header = frames[0].bytes if hasattr(frames[0], "bytes") else frames[0]
        if len(header) > Limits.max_header_bytes:
            return None
        request_id = json.loads(header).get("id")
        return request_id if isinstance(request_id, str) and len(request_id) <= protocol.MAX_ID_CHARS else None
    except Exception:
        return None
