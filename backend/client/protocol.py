"""The face-normals wire protocol, version 1.  Client and server both use this module.

Transport: ZeroMQ, the server binds one ROUTER socket, clients connect DEALER sockets.
Every message is multipart: frame 0 is a UTF-8 JSON header, frames 1..n carry binary payloads
that the header describes.  Nothing is pickled or evaluated.

Request header: {"protocol": 1, "id": "<client-chosen string>", "kind": KIND, "options": {...},
                 "frames": [PAYLOAD, ...]}
  PAYLOAD is {"dtype": "uint8"|"uint16"|"float16"|"float32", "shape": [H, W] or [H, W, C]}
  (raw pixels, C-contiguous) or {"encoding": "image"} (the bytes of a PNG/JPEG/WebP/TIFF file).
Kinds:
  "info"     -> {"kind": "info", "server", "model", "device", "limits", ...}
  "estimate" -> one result per payload frame.  options: "detect" (bool, default true),
                "convention" ("opengl"|"directx"), "mask" (bool, default true),
                "normals_dtype" ("float16"|"uint16", default float16), "focal_35mm" (the
                photo's 35 mm-equivalent focal length: normals in camera space; without it
                each face's are relative to the line of sight to its centre, see frames.py).
                Reply {"kind": "result", "results": [RESULT, ...], "frames": [PAYLOAD, ...]}
                RESULT is {"ok": true, "faces": [[x, y, w, h], ...] (each face's box: its
                landmarks' extent, pixels, largest face first), "face_details": [FACE, ...] (the
                same faces in the same order), "centres": [[x, y], ...]
                (the pixel each face's crop is centred on), "camera_space": bool, "timings"} (its
                normals, then its mask if asked, are the next payload frames; uint16 normals are
                n * 0.5 + 0.5 scaled to 0..65535) or {"ok": false, "code", "message"}: one bad
                image of a batch does not fail the others.
                FACE is {"box": [x, y, w, h], "roll": degrees the face is turned counter-
                clockwise in the photo (its crop was turned upright, its normals back),
                "score": the detector's face probability, "presence": the face mesh's,
                "landmarks": {NAME: [x, y], ...}} with NAME each of right_eye_outer,
                right_eye_inner, left_eye_inner, left_eye_outer, nose_tip, upper_lip, lower_lip,
                right_mouth_corner, left_mouth_corner, chin, forehead ("right": the person's
                right, the photo's left): 11 of MediaPipe's 468 face-mesh points (the Python API,
                NormalMap.faces, has all 468).  Pixel coordinates are continuous: pixel (i, j)
                spans x i..i+1, y j..j+1.  With detect false there are no faces.
                While it works the server sends {"kind": "progress", "done", "total"}.
  "cancel"   -> options {"target": id}; the target's reply becomes an error with code
                "cancelled"; the cancel itself is answered {"kind": "cancelled", "found": bool}.
  "ping"     -> {"kind": "pong"}
Replies carry the request's "id".  While a request is outstanding the server also sends
{"kind": "heartbeat"} about once a second, so a client can tell a busy server from a dead one.
Errors: {"kind": "error", "code": CODE, "message": "<one human sentence>"}, CODE one of ERROR_CODES.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DTYPES = ("uint8", "uint16", "float16", "float32")
KINDS = ("info", "estimate", "cancel", "ping")
ERROR_CODES = ("bad_message", "bad_version", "unknown_kind", "too_large", "bad_image", "no_face",
               "cancelled", "shutting_down", "internal")
HEARTBEAT_SECONDS = 1.0


class ProtocolError(ValueError):
    """A message that does not follow the protocol; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Message:
    header: dict
    payloads: list = field(default_factory=list)   # numpy arrays or bytes, as the header says

    @property
    def kind(self) -> str:
        return self.header.get("kind", "")

    @property
    def id(self) -> str | None:
        return self.header.get("id")


def encode(header: dict, payloads: list | tuple = ()) -> list[bytes]:
    """A message's frames: the JSON header (with a description of each payload) and the payloads."""
    described, frames = [], []
    for payload in payloads:
        if isinstance(payload, (bytes, bytearray, memoryview)):
            described.append({"encoding": "image"})
            frames.append(bytes(payload))
        else:
            array = np.ascontiguousarray(payload)
            if array.dtype.name not in DTYPES:
                raise ProtocolError("bad_message", f"cannot send pixels of type {array.dtype}")
            described.append({"dtype": array.dtype.name, "shape": list(array.shape)})
            frames.append(array.data)
    header = {"protocol": PROTOCOL_VERSION, **header, "frames": described}
    return [json.dumps(header).encode(), *frames]


def decode(frames: list, *, max_pixels: int | None = None) -> Message:
    """Parse and check a message's frames (bytes or zmq.Frame); raises ProtocolError."""
    if not frames:
        raise ProtocolError("bad_message", "empty message")
    try:
        header = json.loads(bytes(frames[0]))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("bad_message", "the first frame is not a JSON header") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "the JSON header is not an object")
    if header.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {header.get('protocol')!r} is not "
                                           f"supported (this side speaks {PROTOCOL_VERSION})")
    for key in ("id", "kind"):   # null only in error replies to messages without a usable id
        if header.get(key) is not None and not isinstance(header[key], str):
            raise ProtocolError("bad_message", f"header field {key!r} must be a string")
    described = header.get("frames", [])
    if not isinstance(described, list) or len(described) != len(frames) - 1:
        raise ProtocolError("bad_message", f"the header describes {len(described) if isinstance(described, list) else '?'} "
                                           f"payload frames but {len(frames) - 1} came")
    payloads = [_payload(d, bytes(f) if not isinstance(f, bytes) else f, max_pixels)
                for d, f in zip(described, frames[1:])]
    return Message(header, payloads)


def _payload(description, data: bytes, max_pixels: int | None):
    if not isinstance(description, dict):
        raise ProtocolError("bad_message", "each payload description must be an object")
    if description.get("encoding") == "image":
        return data
    dtype, shape = description.get("dtype"), description.get("shape")
    if dtype not in DTYPES:
        raise ProtocolError("bad_message", f"payload dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if (not isinstance(shape, list) or not 2 <= len(shape) <= 3
            or not all(isinstance(n, int) and n > 0 for n in shape)):
        raise ProtocolError("bad_message", f"payload shape {shape!r} is not [H, W] or [H, W, C]")
    if max_pixels is not None and shape[0] * shape[1] > max_pixels:
        raise ProtocolError("too_large", f"{shape[1]}x{shape[0]} is over the limit of "
                                         f"{max_pixels / 1e6:.0f} megapixels")
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ProtocolError("bad_message", f"a {dtype} payload of shape {shape} needs {expected} "
                                           f"bytes, {len(data)} came (truncated?)")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def error_header(request_id: str | None, code: str, message: str) -> dict:
    return {"id": request_id, "kind": "error", "code": code, "message": message}


def pack_normals(normals: np.ndarray, dtype: str) -> np.ndarray:
    """Float normals -> what goes on the wire (float16 vectors, or uint16 n * 0.5 + 0.5)."""
    if dtype == "uint16":
        return np.round((np.clip(normals, -1, 1) * 0.5 + 0.5) * 65535).astype(np.uint16)
    if dtype == "float16":
        return normals.astype(np.float16)
    raise ProtocolError("bad_message", f"normals_dtype {dtype!r} is not float16 or uint16")


def unpack_normals(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535 * 2 - 1
    return array.astype(np.float32)
