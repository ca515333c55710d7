"""The service loop.

The main thread owns the ROUTER socket: it parses requests, answers `info`, `ping` and `cancel` at
once, queues estimates, forwards what the worker thread produces, and sends heartbeats for every
outstanding request, so a long batch never starves a ping.  One worker thread runs the model: it
takes every estimate waiting in the queue (up to `max_batch` images), puts all their face crops
through the network together, and replies to each request on its own.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import queue
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import zmq

from .. import __version__
from ..client import protocol
from ..client.frames import check_focal
from ..client.launcher import STATE_FOLDER
from ..client.protocol import ProtocolError
from ..estimator import Estimator, ImageError, NoFaceError
from ..estimator.image_io import MAX_PIXELS, encode_normals, read_image, to_rgb_float
from ..estimator.networks import count_parameters
from .security import CurveKeys, is_loopback

MAX_MESSAGE_BYTES = 256 * 2 ** 20


class ServerStartError(RuntimeError):
    """The server cannot start: the address is taken, or unsafe without keys."""


@dataclasses.dataclass
class Work:
    """An estimate request waiting for, or in, the worker."""
    client: bytes
    request_id: str
    options: dict
    payloads: list
    received: float


def default_state_file(address: str) -> Path:
    safe = "".join(c if c.isalnum() else "_" for c in address)
    return STATE_FOLDER / f"{safe}.json"


class Server:
    def __init__(self, estimator: Estimator, bind: str = protocol.DEFAULT_ADDRESS, *,
                 curve: CurveKeys | None = None, max_pixels: int = MAX_PIXELS,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, max_batch: int = 8,
                 idle_timeout: float | None = None, state_file: Path | None = None):
        if not is_loopback(bind) and curve is None:
            raise ServerStartError(
                f"refusing to bind {bind} without authentication: it can be reached from other "
                f"machines. Bind a loopback address (tcp://127.0.0.1:PORT), or give CURVE keys "
                f"(--curve-secret SERVER.key_secret --curve-clients FOLDER; make them with "
                f"`python -m backend keys FOLDER`)")
        self.estimator = estimator
        self.bind = bind
        self.max_pixels = max_pixels
        self.max_message_bytes = max_message_bytes
        self.max_batch = max_batch
        self.idle_timeout = idle_timeout
        self.state_file = state_file or default_state_file(bind)
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
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
        self.address = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.results = self.context.socket(zmq.PULL)
        self.results.bind(f"inproc://results-{id(self)}")
        self.queue: queue.Queue[Work | None] = queue.Queue()
        self.cancelled: set[tuple[bytes, str]] = set()
        self.outstanding: dict[tuple[bytes, str], float] = {}   # -> when the client last heard
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.model_info = {"version": __version__, "weights": str(estimator.weights),
                           "parameters": count_parameters(estimator.model),
                           "input_size": estimator.size}

    # --- lifecycle -------------------------------------------------------------------------
    def serve_forever(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        worker = threading.Thread(target=self._work, name="estimator", daemon=True)
        worker.start()
        self._write_state()
        print(f"serving on {self.address} (device {self.estimator.device}, protocol "
              f"{protocol.PROTOCOL_VERSION}); state file {self.state_file}", flush=True)
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
                self._heartbeats()
                if (self.idle_timeout and not self.outstanding
                        and time.monotonic() - last_request > self.idle_timeout):
                    print(f"idle for {self.idle_timeout:.0f} s: stopping", flush=True)
                    break
            self._drain(worker)
        finally:
            self.close()

    def _drain(self, worker: threading.Thread, grace: float = 10.0) -> None:
        """Stop: queued work is answered 'shutting_down', the batch in flight may finish."""
        while True:
            try:
                work = self.queue.get_nowait()
            except queue.Empty:
                break
            if work is not None:
                self._send(work.client, protocol.error_header(
                    work.request_id, "shutting_down", "the server is shutting down; not started"))
        self.queue.put(None)
        deadline = time.monotonic() + grace
        while worker.is_alive() and time.monotonic() < deadline:
            if self.results.poll(100):
                self._forward_results()
        while self.results.poll(0):
            self._forward_results()

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        self.state_file.unlink(missing_ok=True)
        self.context.destroy(linger=1000)

    def _write_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({
            "address": self.address, "pid": os.getpid(), "protocol": protocol.PROTOCOL_VERSION,
            "started": time.time(), "device": str(self.estimator.device)}))

    # --- main thread -----------------------------------------------------------------------
    def _send(self, client: bytes, header: dict, payloads=()) -> None:
        self.router.send_multipart([client, *protocol.encode(header, payloads)], copy=False)

    def _receive(self) -> None:
        frames = self.router.recv_multipart(copy=False)
        client, frames = frames[0].bytes, frames[1:]
        request_id = None
        try:
            message = protocol.decode(frames, max_pixels=self.max_pixels)
            request_id = message.id
            if request_id is None:
                raise ProtocolError("bad_message", "the header has no request 'id'")
            self._handle(client, message)
        except ProtocolError as error:
            if request_id is None:
                request_id = _salvage_id(frames)
            self._send(client, protocol.error_header(request_id, error.code, str(error)))

    def _handle(self, client: bytes, message: protocol.Message) -> None:
        kind, request_id, options = message.kind, message.id, message.header.get("options", {})
        if not isinstance(options, dict):
            raise ProtocolError("bad_message", "'options' must be an object")
        if kind == "ping":
            self._send(client, {"id": request_id, "kind": "pong"})
        elif kind == "info":
            self._send(client, self.info(request_id))
        elif kind == "cancel":
            target = options.get("target")
            key = (client, target)
            found = key in self.outstanding
            if found:
                with self.lock:
                    self.cancelled.add(key)
            self._send(client, {"id": request_id, "kind": "cancelled", "found": found})
        elif kind == "estimate":
            if self.stopping.is_set():
                raise ProtocolError("shutting_down", "the server is shutting down")
            if not message.payloads:
                raise ProtocolError("bad_message", "an estimate needs at least one image frame")
            _check_options(options)
            self.outstanding[(client, request_id)] = time.monotonic()
            self.queue.put(Work(client, request_id, options, message.payloads, time.monotonic()))
        else:
            raise ProtocolError("unknown_kind", f"unknown request kind {kind!r} "
                                                f"(known: {', '.join(protocol.KINDS)})")

    def info(self, request_id: str | None) -> dict:
        return {"id": request_id, "kind": "info", "server": __version__,
                "model": self.model_info, "device": str(self.estimator.device),
                "address": self.address, "pid": os.getpid(),
                "limits": {"max_pixels": self.max_pixels, "max_message_bytes": self.max_message_bytes,
                           "max_batch": self.max_batch},
                "queued": self.queue.qsize()}

    def _forward_results(self) -> None:
        while self.results.poll(0):
            frames = self.results.recv_multipart(copy=False)
            client = frames[0].bytes
            header = json.loads(frames[1].bytes)
            key = (client, header.get("id"))
            if header["kind"] in ("result", "error"):
                self.outstanding.pop(key, None)
                with self.lock:
                    self.cancelled.discard(key)
            elif key in self.outstanding:
                self.outstanding[key] = time.monotonic()
            self.router.send_multipart(frames, copy=False)

    def _heartbeats(self) -> None:
        now = time.monotonic()
        for (client, request_id), last in list(self.outstanding.items()):
            if now - last >= protocol.HEARTBEAT_SECONDS:
                self._send(client, {"id": request_id, "kind": "heartbeat"})
                self.outstanding[(client, request_id)] = now

    # --- worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        out = self.context.socket(zmq.PUSH)
        out.connect(f"inproc://results-{id(self)}")
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._estimate(batch, out)
        finally:
            out.close(linger=1000)

    def _next_batch(self) -> list[Work] | None:
        """The first waiting request, and any others already waiting, up to max_batch images."""
        work = self.queue.get()
        if work is None:
            return None
        batch, images = [work], len(work.payloads)
        while images < self.max_batch:
            try:
                more = self.queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.queue.put(None)
                break
            batch.append(more)
            images += len(more.payloads)
        return batch

    def _estimate(self, batch: list[Work], out: zmq.Socket) -> None:
        """Every image of every request in the batch: prepare each, one network pass over all
        crops, then finish and reply per request."""
        prepared = []   # (work, index, job or error)
        for work in batch:
            for index, payload in enumerate(work.payloads):
                if self._is_cancelled(work):
                    break
                prepared.append((work, index, self._prepare(work, payload)))
        jobs = [job for _, _, job in prepared if not isinstance(job, ProtocolError)]
        start = time.perf_counter()
        normals = self.estimator.predict_crops(np.concatenate([j.crops for j in jobs])) if jobs else []
        network_seconds = time.perf_counter() - start
        crops_total = sum(len(j.crops) for j in jobs) or 1
        offset = 0
        replies: dict[int, tuple[list, list]] = {id(w): ([], []) for w in batch}
        for work, index, job in prepared:
            results, payloads = replies[id(work)]
            if isinstance(job, ProtocolError):
                results.append({"ok": False, "code": job.code, "message": str(job)})
                continue
            crop_normals = normals[offset:offset + len(job.crops)]
            job.timings["network"] = network_seconds * len(job.crops) / crops_total
            offset += len(job.crops)
            done = self.estimator.finish(job, crop_normals)
            start = time.perf_counter()
            wire = encode_normals(done.normals, work.options.get("convention", "opengl"))
            dtype = work.options.get("normals_dtype", "float16")
            if dtype == "float16":   # torch converts several times faster than numpy
                wire = torch.from_numpy(wire).half().numpy()
            payloads.append(protocol.pack_normals(wire, dtype))
            if work.options.get("mask", True):
                payloads.append(np.round(done.mask * 255).astype(np.uint8))
            done.timings["encode"] = time.perf_counter() - start
            results.append({"ok": True, "faces": [list(f.box) for f in done.faces],
                            "face_details": [f.to_json() for f in done.faces],
                            "centres": [list(c) for c in done.centres],
                            "camera_space": done.camera_space, "timings": done.timings})
            if len(work.payloads) > 1:
                out.send_multipart([work.client, *protocol.encode(
                    {"id": work.request_id, "kind": "progress", "done": index + 1,
                     "total": len(work.payloads)})])
        for work in batch:
            if self._is_cancelled(work):
                header = protocol.error_header(work.request_id, "cancelled", "cancelled by the client")
                out.send_multipart([work.client, *protocol.encode(header)])
                continue
            results, payloads = replies[id(work)]
            header = {"id": work.request_id, "kind": "result", "results": results,
                      "seconds": time.monotonic() - work.received}
            out.send_multipart([work.client, *protocol.encode(header, payloads)], copy=False)

    def _prepare(self, work: Work, payload):
        try:
            start = time.perf_counter()
            if isinstance(payload, bytes):
                image = read_image(payload, max_pixels=self.max_pixels)
            else:
                image = to_rgb_float(payload)
            decoded = time.perf_counter() - start
            job = self.estimator.prepare(image, detect=bool(work.options.get("detect", True)),
                                         focal_35mm=work.options.get("focal_35mm"))
            job.timings = {"decode": decoded, **job.timings}
            return job
        except ImageError as error:
            return ProtocolError("bad_image", str(error))
        except NoFaceError as error:
            return ProtocolError("no_face", str(error))
        except Exception as error:  # the server must keep serving whatever one image does
            return ProtocolError("internal", f"{type(error).__name__}: {error}")

    def _is_cancelled(self, work: Work) -> bool:
        with self.lock:
            return (work.client, work.request_id) in self.cancelled


def _check_options(options: dict) -> None:
    if options.get("convention", "opengl") not in ("opengl", "directx"):
        raise ProtocolError("bad_message", "option 'convention' must be 'opengl' or 'directx'")
    if options.get("normals_dtype", "float16") not in ("float16", "uint16"):
        raise ProtocolError("bad_message", "option 'normals_dtype' must be 'float16' or 'uint16'")
    if options.get("focal_35mm") is not None:
        try:
            check_focal(options["focal_35mm"])
        except ValueError as error:
            raise ProtocolError("bad_message", f"option 'focal_35mm': {error}") from None


def _salvage_id(frames) -> str | None:
    """The request id of a message that failed to parse, when its header still has one."""
    try:
        request_id = json.loads(bytes(frames[0])).get("id")
        return request_id if isinstance(request_id, str) else None
    except Exception:
        return None
