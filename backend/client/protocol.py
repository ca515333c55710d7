"""The face-normals wire protocol, version 1.  Client and server both use this module.

Transport: ZeroMQ, the server binds one ROUTER socket, clients connect DEALER sockets.
Every message is multipart: frame 0 is a UTF-8 JSON header, frames 1..n carry binary payloads
that the header describes.  Nothing is pickled or evaluated.

Request header: {"protocol": 1, "id": "<client-chosen string>", "kind": KIND, "options": {...},
                 "frames": [PAYLOAD, ...]}   (no other fields)
  PAYLOAD is {"dtype": "uint8"|"uint16"|"float16"|"float32", "shape": [H, W] or [H, W, C]}
  (raw pixels, C-contiguous, C of CHANNELS) or {"encoding": "image"} (the bytes of a
  PNG/JPEG/WebP/TIFF/BMP file).
Kinds and their options (every option is checked for type and range; unknown options, a bool
where a number is due or a number where a bool is due are refused, nothing is coerced):
  "info"     -> {"kind": "info", "server", "model", "device", "limits": Limits, "outputs": [the
                names an estimate's "outputs" may hold], ...}.  No options.
  "estimate" -> one result per payload frame.  Options (EstimateOptions): "detect" (bool, default
                true), "convention" ("opengl"|"directx"), "mask" (bool, default true),
                "normals_dtype" ("float16"|"uint16"|"float32", default float16), "focal_35mm" (a number
                from 1 to 5000, or null: the photo's 35 mm-equivalent focal length gives normals
                in camera space; without it each face's are relative to the line of sight to its
                centre, see frames.py), "outputs" (a list of distinct names of "normal", "mask",
                "albedo", "height", "light"; absent: normal, and mask when "mask" is true).
                Reply {"kind": "result", "results": [RESULT, ...], "frames": [PAYLOAD, ...]}
                RESULT is {"ok": true, "faces": [[x, y, w, h], ...] (each face's box: its
                landmarks' extent, pixels, largest face first), "face_details": [FACE, ...] (the
                same faces in the same order), "centres": [[x, y], ...]
                (the pixel each face's crop is centred on), "camera_space": bool, "timings",
                "maps": [NAME, ...] (the next payload frames, in this order: normal (H, W, 3) as
                normals_dtype, uint16 being n * 0.5 + 0.5 scaled to 0..65535; mask (H, W) uint8;
                albedo (H, W, 3) float16 linear RGB; height (H, W) float32), "light" (when asked:
                {"sh": 9 x [r, g, b] SH irradiance, "direction": [x, y, z], "source", "frame",
                "order"}, see core/sh.py), "height_range" (when asked: {"unit", "min", "max"}),
                "warnings": [sentence, ...] (why not to trust this map, e.g. no person in the
                image; absent from older servers)} or
                {"ok": false, "code", "message"}: one bad image of a batch does not fail the others.
                (Servers before "outputs" send no "maps": normals, then the mask if asked.)
                FACE is {"box": [x, y, w, h], "roll": degrees the face is turned counter-
                clockwise in the photo (its crop was turned upright, its normals back),
                "score": the detector's face probability, "presence": the face mesh's,
                "landmarks": {NAME: [x, y], ...}} with NAME each of right_eye_outer,
                right_eye_inner, left_eye_inner, left_eye_outer, nose_tip, upper_lip, lower_lip,
                right_mouth_corner, left_mouth_corner, chin, forehead, right_iris, left_iris
                ("right": the person's right, the photo's left; the irises' centres): 13 of
                MediaPipe's 478 face-mesh and iris points (the Python API, NormalMap.faces, has
                all 478).  Pixel coordinates are continuous: pixel (i, j)
                spans x i..i+1, y j..j+1.  With detect false there are no faces.
                While it works the server sends {"kind": "progress", "done", "total"}.
  "batch"    -> files on the server's own disk estimated by `python -m backend batch`'s local path
                (worker processes beside the server, each loading the model once) into a folder
                there; for a client on the same machine (the add-on with a local backend) with
                more photos than one request should carry.  Options: "inputs" (a list of 1 or
                more absolute paths on the server's machine, each what `batch` takes: a photo,
                a folder of photos, a .txt list of paths, a video or an image-sequence pattern;
                a long list travels best as one .txt list, within max_header_bytes), "output"
                (an absolute folder path: the maps, named as `batch` names them, and
                manifest.jsonl; a folder with a manifest resumes: what is done is skipped),
                "estimate" (an object of the estimate options above, default {}; "outputs" and
                "convention" choose the files, "normals_dtype" does not apply: files hold 16-bit
                normals).  A path that is not absolute is refused ("bad_message": the server's
                working folder is no business of the client's).  The server runs one batch at a
                time (another is answered "busy"); only peers on its machine or holding a
                CURVE key can ask, as for every kind.  While it runs the server sends
                {"kind": "progress", "done": photos finished, "total", "failed": how many of
                those failed}; the reply is {"kind": "batch", "summary": {"done", "skipped",
                "failed": {input: "code: message"}, "left", "seconds", "photos_per_second",
                "previews", "interrupted"}, "manifest": its path} (a photo that fails is in
                the summary, not an error); an input that does not exist or cannot be read is
                an error "bad_message" before any work; cancelled, the photos in flight finish
                and are in the manifest (a later batch into the same folder resumes).
  "cancel"   -> options {"target": id}; the target's reply becomes an error with code
                "cancelled" (queued work is dropped at once, work in progress between images,
                a batch after the photos in flight); the cancel itself is answered
                {"kind": "cancelled", "found": bool}.
  "ping"     -> {"kind": "pong"}.  No options.
Replies carry the request's "id".  While a request is outstanding and the server is working on
it or has it queued behind work that is moving, the server sends {"kind": "heartbeat", "state":
"queued"|"working"} about once a second; a client that hears nothing for its timeout can take
the server for dead or stuck.
Errors: {"kind": "error", "code": CODE, "message": "<one human sentence>"}, CODE one of ERROR_CODES.

Limits (`Limits`, announced in `info`): the header's size and nesting depth, images per
request, pixels per image and per request, the reply's size, and requests queued per client and
in all.  A request over a size limit is answered "too_large"; a request that finds the queue
full is answered "busy" (try again later).  Sizes are checked with Python integers before any
memory is allocated for them; an encoded image's size is read from its file header before it
is decoded; truncated image data is "bad_image".
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.encoding import normals_from_uint16, normals_to_uint16
from ..core.images import CHANNELS as CHANNELS   # the rules images follow, for clients too
from ..core.images import MAX_ASPECT as MAX_ASPECT
from ..core.images import MIN_SIDE as MIN_SIDE
from ..core.options import EstimateOptions as EstimateOptions
from ..core.options import OptionError

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DTYPES = ("uint8", "uint16", "float16", "float32")
KINDS = ("info", "estimate", "cancel", "ping", "batch")
REQUEST_FIELDS = ("protocol", "id", "kind", "options", "frames")
ERROR_CODES = ("bad_message", "bad_version", "unknown_kind", "too_large", "bad_image", "no_face",
               "busy", "cancelled", "shutting_down", "internal")
HEARTBEAT_SECONDS = 1.0
MAX_ID_CHARS = 200
MAX_PATH_CHARS = 4096       # one path of a batch request
BATCH_OPTIONS = ("inputs", "output", "estimate")
REPLY_HEADER_BYTES = 16 * 2 ** 20   # what a client accepts from a server (results can be long)


@dataclass(frozen=True)
class Limits:
    """What one request (and one client) may ask of a server; `info` announces them."""
    max_header_bytes: int = 64 * 1024
    max_header_depth: int = 8              # a request header needs 4: {"frames": [{"shape": []}]}
    max_images: int = 32                   # images in one estimate
    max_pixels: int = 4096 * 4096          # one image
    max_request_pixels: int = 4096 * 4096  # all images of one estimate
    max_reply_bytes: int = 160 * 2 ** 20   # all result frames of one estimate
    max_message_bytes: int = 256 * 2 ** 20  # one frame (ZeroMQ drops larger ones and the peer)
    max_queued: int = 16                   # one client's estimates waiting or in work
    max_queued_total: int = 64             # everyone's
    max_queued_bytes: int = 512 * 2 ** 20  # the payloads of all of them together

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BatchOptions:
    """A batch request's options, checked (parse_request puts them in place of the JSON)."""
    inputs: tuple[str, ...]
    output: str
    estimate: EstimateOptions


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

    @property
    def options(self) -> dict:
        return self.header.get("options", {})


def encode(header: dict, payloads: list | tuple = ()) -> list[bytes | memoryview]:
    """A message's frames: the JSON header (with a description of each payload) and the payloads."""
    described: list[dict[str, Any]] = []
    frames: list[bytes | memoryview] = []
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


def decode(frames: list, *, max_header_bytes: int = REPLY_HEADER_BYTES, max_depth: int = 32,
           max_pixels: int | None = None) -> Message:
    """Parse and check a message's structure (bytes or zmq.Frame frames); raises ProtocolError.
    Requests get the stricter `parse_request` on top."""
    if not frames:
        raise ProtocolError("bad_message", "empty message")
    raw = _bytes(frames[0])
    if len(raw) > max_header_bytes:
        raise ProtocolError("too_large", f"the JSON header is {len(raw)} bytes, over the limit of "
                                         f"{max_header_bytes}")
    try:
        header = json.loads(raw)
    except RecursionError:    # the parser's own depth limit, far beyond any legal header
        header = None
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("bad_message", "the first frame is not a JSON header") from None
    if header is None or json_depth(header) > max_depth:
        raise ProtocolError("bad_message", f"the JSON header is nested more than {max_depth} deep")
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "the JSON header is not an object")
    version = header.get("protocol")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version!r:.40} is not supported "
                                           f"(this side speaks {PROTOCOL_VERSION})")
    for key in ("id", "kind"):   # null only in error replies to messages without a usable id
        if header.get(key) is not None and not isinstance(header[key], str):
            raise ProtocolError("bad_message", f"header field {key!r} must be a string")
    described = header.get("frames", [])
    if not isinstance(described, list) or len(described) != len(frames) - 1:
        count = len(described) if isinstance(described, list) else "?"
        raise ProtocolError("bad_message", f"the header describes {count} payload frames but "
                                           f"{len(frames) - 1} came")
    payloads = [_payload(d, _bytes(f), max_pixels) for d, f in zip(described, frames[1:])]
    return Message(header, payloads)


def parse_request(frames: list, limits: Limits) -> Message:
    """A request checked field by field against the specification above and `limits`
    (ProtocolError otherwise); estimate options are replaced by their EstimateOptions."""
    message = decode(frames, max_header_bytes=limits.max_header_bytes,
                     max_depth=limits.max_header_depth, max_pixels=limits.max_pixels)
    header = message.header
    _check_names(header, REQUEST_FIELDS, "request header")
    request_id = header.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise ProtocolError("bad_message", f"the header needs a request 'id': a string of 1 to "
                                           f"{MAX_ID_CHARS} characters")
    kind, options = header.get("kind"), header.get("options", {})
    if kind not in KINDS:
        raise ProtocolError("unknown_kind", f"unknown request kind {kind!r:.40} "
                                            f"(known: {', '.join(KINDS)})")
    if not isinstance(options, dict):
        raise ProtocolError("bad_message", "'options' must be an object")
    if kind != "estimate" and message.payloads:
        raise ProtocolError("bad_message", f"a {kind!r} request carries no payload frames")
    if kind in ("info", "ping"):
        _check_names(options, (), kind)
    elif kind == "batch":
        header["options"] = _batch_options(options)
    elif kind == "cancel":
        _check_names(options, ("target",), kind)
        target = options.get("target")
        if not isinstance(target, str) or not 0 < len(target) <= MAX_ID_CHARS:
            raise ProtocolError("bad_message", "a cancel needs option 'target': the id of a request")
    else:
        try:
            header["options"] = EstimateOptions.parse(options)
        except OptionError as error:
            raise ProtocolError("bad_message", str(error)) from None
        _check_images(message, limits)
    return message


def _batch_options(options: dict) -> BatchOptions:
    _check_names(options, BATCH_OPTIONS, "batch")
    inputs, output = options.get("inputs"), options.get("output")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("bad_message", "a batch needs option 'inputs': a list of one or more "
                                           "absolute paths on the server's machine")
    for name, path in [*(("inputs", path) for path in inputs), ("output", output)]:
        if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH_CHARS or "\0" in path:
            raise ProtocolError("bad_message", f"batch option {name!r} holds {path!r:.60}: not a path "
                                               f"(a string of 1 to {MAX_PATH_CHARS} characters)")
        if not os.path.isabs(path):
            raise ProtocolError("bad_message", f"batch option {name!r}: {path!r:.200} is not an absolute "
                                               f"path; a batch reads and writes the server's own disk, "
                                               f"so give every path whole, as the server's machine "
                                               f"names it")
    estimate = options.get("estimate", {})
    if not isinstance(estimate, dict):
        raise ProtocolError("bad_message", "batch option 'estimate' must be an object of estimate options")
    try:
        parsed = EstimateOptions.parse(estimate)
    except OptionError as error:
        raise ProtocolError("bad_message", str(error)) from None
    return BatchOptions(tuple(inputs), str(output), parsed)


def _check_images(message: Message, limits: Limits) -> None:
    count = len(message.payloads)
    if count == 0:
        raise ProtocolError("bad_message", "an estimate needs at least one image frame")
    if count > limits.max_images:
        raise ProtocolError("too_large", f"{count} images in one request, over the limit of "
                                         f"{limits.max_images}: send them in several requests")


def check_request_size(pixels: list[int], limits: Limits, options: EstimateOptions) -> None:
    """All images of one estimate together: pixels in, bytes out (ProtocolError 'too_large')."""
    total = sum(pixels)
    if total > limits.max_request_pixels:
        raise ProtocolError("too_large", f"the images of this request hold {total / 1e6:.1f} "
                                         f"megapixels, over the limit of "
                                         f"{limits.max_request_pixels / 1e6:.1f} per request: "
                                         f"send them in several requests")
    reply = total * options.reply_bytes_per_pixel()
    if reply > limits.max_reply_bytes:
        raise ProtocolError("too_large", f"the reply would be {reply / 2 ** 20:.0f} MB, over the "
                                         f"limit of {limits.max_reply_bytes / 2 ** 20:.0f} MB")


def _payload(description, data: bytes, max_pixels: int | None):
    if not isinstance(description, dict):
        raise ProtocolError("bad_message", "each payload description must be an object")
    if description == {"encoding": "image"}:
        return data
    if set(description) != {"dtype", "shape"}:
        raise ProtocolError("bad_message", "a payload description is {\"encoding\": \"image\"} or "
                                           "{\"dtype\": ..., \"shape\": [...]}")
    dtype, shape = description["dtype"], description["shape"]
    if dtype not in DTYPES:
        raise ProtocolError("bad_message", f"payload dtype {dtype!r:.40} is not one of {', '.join(DTYPES)}")
    if (not isinstance(shape, list) or not 2 <= len(shape) <= 3
            or not all(type(n) is int and n > 0 for n in shape)):
        raise ProtocolError("bad_message", f"payload shape {shape!r:.60} is not [H, W] or [H, W, C] "
                                           f"of positive integers")
    if max_pixels is not None and shape[0] * shape[1] > max_pixels:   # Python ints: no overflow
        raise ProtocolError("too_large", f"{shape[1]}x{shape[0]} is over the limit of "
                                         f"{max_pixels / 1e6:.1f} megapixels")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise ProtocolError("bad_message", f"a {dtype} payload of shape {shape} needs {expected} "
                                           f"bytes, {len(data)} came (truncated?)")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach: ipc://, inproc://, tcp on 127/8, ::1, localhost."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    match = re.fullmatch(r"tcp://(\[?)([^\]]+)\1:(\d+|\*)", address)
    if not match:
        return False
    host = match.group(2)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # an interface name or a host name: may face the network


def json_depth(value) -> int:
    """How deep parsed JSON's arrays and objects nest (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _check_names(given: dict, known, what: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(repr(n)[:40] for n in unknown[:3])
        raise ProtocolError("bad_message", f"unknown {what} field(s) {names}" +
                            (f" (known: {', '.join(known)})" if known else " (it takes none)"))


def _bytes(frame) -> bytes:
    return frame if isinstance(frame, bytes) else bytes(frame)


def error_header(request_id: str | None, code: str, message: str) -> dict:
    return {"id": request_id, "kind": "error", "code": code, "message": message}


def pack_normals(normals: np.ndarray, dtype: str) -> np.ndarray:
    """Float normals -> what goes on the wire (float16 or float32 vectors, or uint16 n * 0.5 + 0.5)."""
    if dtype == "uint16":
        return normals_to_uint16(normals)
    if dtype in ("float16", "float32"):
        return normals.astype(dtype, copy=False)
    raise ProtocolError("bad_message", f"normals_dtype {dtype!r} is not float16, float32 or uint16")


def unpack_normals(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return normals_from_uint16(array)
    return array.astype(np.float32)
