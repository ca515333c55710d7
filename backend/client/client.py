"""The client: a DEALER socket driven by a non-blocking `step()`.

`submit()` returns a `Request` at once; `step()` (called from a Blender modal timer, or a loop in
a script) moves every outstanding request forward without blocking; `wait()` and the `info()` /
`estimate()` helpers block with a timeout, for scripts.  When the server sends nothing - no reply,
no progress, no heartbeat - for `timeout` seconds, every outstanding request fails with
`ServerUnavailable`, and the socket is closed and rebuilt, so the next request works as soon as a
server answers again (the "lazy pirate" pattern of the ZeroMQ guide).  What the client gives up
on - a timeout, `abandon()` (the add-on's Esc), `close()` - it cancels, so the server does not
spend its time on work nobody will read.
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from ..core.encoding import mask_from_uint8
from . import protocol


class ServerError(RuntimeError):
    """The server answered with an error (its `code` is one of protocol.ERROR_CODES)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class ServerUnavailable(ServerError):
    """No server answered in time: not running, not reachable, crashed or stuck."""

    def __init__(self, message: str):
        super().__init__("unavailable", message)


class Request:
    """One request in flight.  `state` is 'pending', 'done' or 'failed'."""

    __slots__ = ("id", "kind", "state", "reply", "error", "done", "total", "failed")

    def __init__(self, request_id: str, kind: str):
        self.id, self.kind = request_id, kind
        self.state = "pending"
        self.reply: protocol.Message | None = None
        self.error: ServerError | None = None
        self.done, self.total = 0, 0          # progress of a batch
        self.failed = 0                       # of those done, how many failed (a "batch" request)

    @property
    def finished(self) -> bool:
        return self.state != "pending"

    def result(self) -> protocol.Message:
        if self.state == "failed" and self.error is not None:
            raise self.error
        if self.state != "done" or self.reply is None:
            raise RuntimeError("the request has not finished")
        return self.reply


class Batch:
    """Several images estimated one request each, at most `window` in flight, so that any number
    of photos fits the server's per-request limits and progress counts finished photos.
    Driven by `Client.step()` like a Request; `results` has one entry per image once finished
    (the dicts of `unpack_estimate`, or {"error": ServerError})."""

    __slots__ = ("options", "waiting", "running", "results", "window", "error")

    def __init__(self, options: protocol.EstimateOptions, images: list, window: int):
        self.options = options
        self.waiting = list(enumerate(images))       # (index, image) not yet sent
        self.running: dict[int, Request] = {}        # index -> its request
        self.results: list[dict | None] = [None] * len(images)
        self.window = window
        self.error: ServerError | None = None        # set when the server is gone: all failed

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def done(self) -> int:
        return sum(result is not None for result in self.results)

    @property
    def finished(self) -> bool:
        return self.done == self.total

    @property
    def state(self) -> str:
        return "pending" if not self.finished else "failed" if self.error else "done"


class Client:
    def __init__(self, address: str = protocol.DEFAULT_ADDRESS, *, timeout: float = 5.0,
                 server_public_key: str | Path | None = None, client_keys: str | Path | None = None,
                 context: zmq.Context | None = None):
        """server_public_key: the server's NAME.key file, client_keys: this client's NAME.key_secret
        file; both only for a server that requires CURVE."""
        self.address = address
        self.timeout = timeout
        self.context = context or zmq.Context.instance()
        self._curve = _load_curve(server_public_key, client_keys) if server_public_key or client_keys else None
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid()}-{id(self):x}-"
        self.pending: dict[str, Request] = {}
        self._batches: list[Batch] = []
        self._heard = time.monotonic()
        self.socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if self._curve:
            socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = self._curve
        socket.connect(self.address)
        return socket

    def close(self) -> None:
        """Cancel what is still pending (given a moment to leave), then close the socket."""
        for request in list(self.pending.values()):
            self.abandon(request)
        self.socket.close(linger=200)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # --- non-blocking core -----------------------------------------------------------------
    def submit(self, kind: str, options: dict | None = None, payloads=()) -> Request:
        request = Request(self._prefix + str(next(self._ids)), kind)
        frames = protocol.encode({"id": request.id, "kind": kind, "options": options or {}}, payloads)
        if not self.pending:
            self._heard = time.monotonic()   # the silence clock runs only while we wait
        self.socket.send_multipart(frames, copy=False)
        self.pending[request.id] = request
        return request

    def step(self) -> list[Request]:
        """Take every message that has arrived, without blocking; return requests that finished.
        Fails all outstanding requests when the server has been silent too long."""
        finished = []
        while self.socket.poll(0):
            frames = self.socket.recv_multipart(copy=False)
            self._heard = time.monotonic()
            try:
                message = protocol.decode(frames)
            except protocol.ProtocolError:
                continue   # not ours to answer; a broken reply must not stop the others
            request = self.pending.get(message.id or "")
            if request is None:
                continue   # a reply to a request we gave up on
            if message.kind == "heartbeat":
                continue
            if message.kind == "progress":
                request.done, request.total = message.header["done"], message.header["total"]
                request.failed = message.header.get("failed", 0)
                continue
            del self.pending[request.id]
            if message.kind == "error":
                request.state = "failed"
                request.error = ServerError(message.header.get("code", "internal"),
                                            message.header.get("message", "unknown error"))
            else:
                request.state, request.reply = "done", message
            finished.append(request)
        if self.pending and time.monotonic() - self._heard > self.timeout:
            finished += self._give_up()
        for batch in list(self._batches):
            self._advance(batch)
        return finished

    def _give_up(self) -> list[Request]:
        error = ServerUnavailable(
            f"no answer from the face-normals server at {self.address} for {self.timeout:.0f} s: "
            f"it is not running, not reachable, or has crashed (start it with "
            f"`python -m backend serve`)")
        failed = list(self.pending.values())
        for request in failed:
            self._send_cancel(request)      # a stuck server that recovers skips them
            request.state, request.error = "failed", error
        self.pending.clear()
        self.socket.close(linger=100)      # lazy pirate: a fresh socket for the next request
        self.socket = self._connect()
        return failed

    def submit_batch(self, options: protocol.EstimateOptions, images: list, *, window: int = 2) -> Batch:
        """Estimate `images` one request each (see Batch); returns at once."""
        batch = Batch(options, list(images), window)
        self._batches.append(batch)
        self._advance(batch)
        return batch

    def _advance(self, batch: Batch) -> None:
        for index, request in list(batch.running.items()):
            if not request.finished:
                continue
            del batch.running[index]
            if request.state == "done":
                [batch.results[index]] = unpack_estimate(request.result(), batch.options.mask)
            elif isinstance(request.error, ServerUnavailable):   # no point sending the rest
                self.abandon(batch)
                batch.error = request.error
                batch.results = [{"error": request.error} if r is None or "error" in r and
                                 r["error"].code == "cancelled" else r for r in batch.results]
                return
            else:
                batch.results[index] = {"error": request.error}
        while batch.waiting and len(batch.running) < batch.window:
            index, image = batch.waiting.pop(0)
            batch.running[index] = self.submit("estimate", batch.options.to_wire(), [image])
        if batch.finished and batch in self._batches:
            self._batches.remove(batch)

    def cancel(self, request: Request) -> Request:
        """Ask the server to cancel `request`; its reply becomes a 'cancelled' error, and the
        returned request is answered with whether the server still had it."""
        return self.submit("cancel", {"target": request.id})

    def abandon(self, request: Request | Batch, reason: str = "cancelled by the client") -> None:
        """Stop waiting for `request` (or a batch) now: the server is told to drop it, it fails
        with code 'cancelled', and nothing more is heard of it."""
        if isinstance(request, Batch):
            error = ServerError("cancelled", reason)
            for part in request.running.values():
                self.abandon(part, reason)
            request.results = [r if r is not None else {"error": error} for r in request.results]
            request.waiting, request.running, request.error = [], {}, error
            if request in self._batches:
                self._batches.remove(request)
            return
        if self.pending.pop(request.id, None) is None:
            return
        self._send_cancel(request)
        request.state, request.error = "failed", ServerError("cancelled", reason)

    def _send_cancel(self, request: Request) -> None:
        header = {"id": request.id + "-cancel", "kind": "cancel", "options": {"target": request.id}}
        try:
            self.socket.send_multipart(protocol.encode(header), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass    # nowhere to send it: the server is gone, and so is the work

    # --- blocking conveniences for scripts ---------------------------------------------------
    def wait(self, request: Request, timeout: float | None = None) -> protocol.Message:
        """Block until the request finishes (or `timeout` seconds pass: ServerUnavailable)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not request.finished:
            self.socket.poll(50)
            self.step()
            if deadline is not None and time.monotonic() > deadline and not request.finished:
                self.abandon(request)
                request.error = ServerUnavailable(f"no result from {self.address} within {timeout:.0f} s")
        return request.result()

    def info(self, timeout: float | None = None) -> dict:
        return self.wait(self.submit("info"), timeout).header

    def estimate(self, images, *, detect: bool = protocol.EstimateOptions.detect,
                 convention: str = protocol.EstimateOptions.convention,
                 mask: bool = protocol.EstimateOptions.mask,
                 normals_dtype: str = protocol.EstimateOptions.normals_dtype,
                 focal_35mm: float | None = None, outputs: tuple[str, ...] | list[str] | None = None,
                 timeout: float | None = None) -> list[dict]:
        """Normals for a list of images (encoded file bytes, or uint8/uint16/float arrays).
        Returns one dict per image: {"normals": (H, W, 3) float32, "mask": (H, W) float32 or None,
        "faces", "face_details", "centres", "camera_space", "timings", "warnings"}, or {"error": ServerError}
        for an image that failed.  normals_dtype "uint16" travels as the 16-bit PNG stores them; "float16" is
        the default.  focal_35mm (35 mm equivalent): normals in camera space (frames.py).
        outputs: the maps to return (core/options.py OUTPUTS), each under its own key ("normals",
        "mask", "albedo", "height"; "light" in the result's JSON)."""
        options = protocol.EstimateOptions(detect, convention, mask, normals_dtype, focal_35mm,
                                           tuple(outputs) if outputs is not None else None)
        request = self.submit("estimate", options.to_wire(), list(images))
        return unpack_estimate(self.wait(request, timeout), mask)


def _load_curve(server_public_key, client_keys) -> tuple[bytes, bytes, bytes]:
    """(server public, client public, client secret) from key files made by `backend keys`;
    ValueError with a sentence if a file is missing or of the wrong kind."""
    if not (server_public_key and client_keys):
        raise ValueError("a CURVE server needs both the server's public key file (NAME.key) and "
                         "this client's secret key file (NAME.key_secret)")
    try:
        server_public, _ = zmq.auth.load_certificate(str(server_public_key))
        public, secret = zmq.auth.load_certificate(str(client_keys))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the CURVE keys: {error}") from None
    if secret is None:
        raise ValueError(f"{client_keys} is a public key; the client needs its secret key file "
                         f"(NAME.key_secret)")
    return server_public, public, secret


def unpack_estimate(reply: protocol.Message, mask: bool) -> list[dict[str, Any]]:
    """One dict per image: its maps by name (normals and mask decoded to float32; albedo and height
    as sent) and the rest of its result; a server that names no "maps" sent normals, then the mask
    if asked."""
    payloads = iter(reply.payloads)
    out: list[dict[str, Any]] = []
    for result in reply.header["results"]:
        if not result["ok"]:
            out.append({"error": ServerError(result["code"], result["message"])})
            continue
        maps = {name: next(payloads) for name in result.get("maps", ["normal", "mask"][:1 + mask])}
        out.append({**{k: v for k, v in result.items() if k not in ("ok", "maps")},
                    "normals": protocol.unpack_normals(maps["normal"]) if "normal" in maps else None,
                    "mask": mask_from_uint8(maps["mask"]) if "mask" in maps else None,
                    "albedo": maps.get("albedo"), "height": maps.get("height"),
                    "face_details": result.get("face_details", [])})   # absent from older servers
    return out
