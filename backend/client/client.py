"""The client: a DEALER socket driven by a non-blocking `step()`.

`submit()` returns a `Request` at once; `step()` (called from a Blender modal timer, or a loop in
a script) moves every outstanding request forward without blocking; `wait()` and the `info()` /
`estimate()` helpers block with a timeout, for scripts.  When the server sends nothing - no reply,
no progress, no heartbeat - for `timeout` seconds, every outstanding request fails with
`ServerUnavailable`, and the socket is closed and rebuilt, so the next request works as soon as a
server answers again (the "lazy pirate" pattern of the ZeroMQ guide).
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import zmq
import zmq.auth

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

    __slots__ = ("id", "kind", "state", "reply", "error", "done", "total")

    def __init__(self, request_id: str, kind: str):
        self.id, self.kind = request_id, kind
        self.state = "pending"
        self.reply: protocol.Message | None = None
        self.error: ServerError | None = None
        self.done, self.total = 0, 0          # progress of a batch

    @property
    def finished(self) -> bool:
        return self.state != "pending"

    def result(self) -> protocol.Message:
        if self.state == "failed":
            raise self.error
        if self.state != "done":
            raise RuntimeError("the request has not finished")
        return self.reply


class Client:
    def __init__(self, address: str = protocol.DEFAULT_ADDRESS, *, timeout: float = 5.0,
                 server_public_key: str | Path | None = None, client_keys: str | Path | None = None,
                 context: zmq.Context | None = None):
        """server_public_key: the server's NAME.key file, client_keys: this client's NAME.key_secret
        file; both only for a server that requires CURVE."""
        self.address = address
        self.timeout = timeout
        self.context = context or zmq.Context.instance()
        self._curve = None
        if server_public_key or client_keys:
            server_public, _ = zmq.auth.load_certificate(str(server_public_key))
            public, secret = zmq.auth.load_certificate(str(client_keys))
            self._curve = (server_public, public, secret)
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid()}-{id(self):x}-"
        self.pending: dict[str, Request] = {}
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
        self.socket.close(linger=0)

    def __enter__(self) -> "Client":
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
            request = self.pending.get(message.id)
            if request is None:
                continue   # a reply to a request we gave up on
            if message.kind == "heartbeat":
                continue
            if message.kind == "progress":
                request.done, request.total = message.header["done"], message.header["total"]
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
        return finished

    def _give_up(self) -> list[Request]:
        error = ServerUnavailable(
            f"no answer from the face-normals server at {self.address} for {self.timeout:.0f} s: "
            f"it is not running, not reachable, or has crashed (start it with "
            f"`python -m backend serve`)")
        failed = list(self.pending.values())
        for request in failed:
            request.state, request.error = "failed", error
        self.pending.clear()
        self.socket.close(linger=0)        # lazy pirate: a fresh socket for the next request
        self.socket = self._connect()
        return failed

    def cancel(self, request: Request) -> Request:
        return self.submit("cancel", {"target": request.id})

    # --- blocking conveniences for scripts ---------------------------------------------------
    def wait(self, request: Request, timeout: float | None = None) -> protocol.Message:
        """Block until the request finishes (or `timeout` seconds pass: ServerUnavailable)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not request.finished:
            self.socket.poll(50)
            self.step()
            if deadline is not None and time.monotonic() > deadline and not request.finished:
                self.pending.pop(request.id, None)
                request.state = "failed"
                request.error = ServerUnavailable(f"no result from {self.address} within {timeout:.0f} s")
        return request.result()

    def info(self, timeout: float | None = None) -> dict:
        return self.wait(self.submit("info"), timeout).header

    def estimate(self, images, *, detect: bool = True, convention: str = "opengl", mask: bool = True,
                 normals_dtype: str = "float16", focal_35mm: float | None = None,
                 timeout: float | None = None) -> list[dict]:
        """Normals for a list of images (encoded file bytes, or uint8/uint16/float arrays).
        Returns one dict per image: {"normals": (H, W, 3) float32, "mask": (H, W) float32 or None,
        "faces", "face_details", "centres", "camera_space", "timings"}, or {"error": ServerError}
        for an image that failed.  normals_dtype "uint16" travels as the 16-bit PNG stores them; "float16" is
        the default.  focal_35mm (35 mm equivalent): normals in camera space (frames.py)."""
        options = {"detect": detect, "convention": convention, "mask": mask,
                   "normals_dtype": normals_dtype}
        if focal_35mm is not None:
            options["focal_35mm"] = focal_35mm
        request = self.submit("estimate", options, list(images))
        return unpack_estimate(self.wait(request, timeout), mask)


def unpack_estimate(reply: protocol.Message, mask: bool) -> list[dict]:
    payloads = iter(reply.payloads)
    out = []
    for result in reply.header["results"]:
        if not result["ok"]:
            out.append({"error": ServerError(result["code"], result["message"])})
            continue
        normals = protocol.unpack_normals(next(payloads))
        face_mask = next(payloads).astype(np.float32) / 255 if mask else None
        out.append({"normals": normals, "mask": face_mask, "faces": result["faces"],
                    "face_details": result.get("face_details", []),  # absent from older servers
                    "centres": result["centres"], "camera_space": result["camera_space"],
                    "timings": result["timings"]})
    return out
