"""Malformed requests, by class: what the live fuzz test and the soak benchmark throw at a server.

Each class is a function of a random generator that returns (frames, codes): the multipart
message and the error codes an honest server may answer it with.  Together they cover every
field of every kind of the protocol (backend/client/protocol.py) with wrong types, wrong
ranges, wrong sizes and sizes that overflow fixed-width arithmetic, plus image data that is
not an image, is cut short, or declares far more pixels than it carries.
"""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

from ..client import protocol

Frames = list[bytes]

ESTIMATE = {"kind": "estimate", "options": {}}
WRONG_TYPES = [None, True, 0, 1, -1, 1.5, "", "x", "no", [], [1], {}, {"a": 1}]


def header(rng: np.random.Generator, **fields) -> bytes:
    base = {"protocol": 1, "id": f"fuzz-{rng.integers(1 << 62)}"}
    return json.dumps({**base, **fields}).encode()


def raw_frame(shape, dtype="uint8") -> tuple[dict, bytes]:
    return {"dtype": dtype, "shape": list(shape)}, bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)


def _estimate_of(rng, description, data, **options) -> Frames:
    return [header(rng, kind="estimate", options=options, frames=[description]), data]


def png_declaring(width: int, height: int, body: bytes = b"") -> bytes:
    """A PNG header for width x height that holds almost no pixel data (87 bytes or so)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def encoded(rng, fmt: str, size=(64, 64), **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), np.uint8)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


# --- the classes ---------------------------------------------------------------------------------

def not_json(rng) -> tuple[Frames, set]:
    return [bytes(rng.integers(0, 256, int(rng.integers(0, 300)), np.uint8))], {"bad_message", "bad_version"}


def not_utf8(rng):
    return [b'{"protocol": 1, "id": "\xff\xfe", "kind": "info"}'], {"bad_message"}


def json_not_an_object(rng):
    value = [[1, 2], 3, "info", None, True, 1.5][rng.integers(6)]
    return [json.dumps(value).encode()], {"bad_message"}


def deep_nesting(rng):
    depth = int(rng.choice([9, 40, 1000, 5000, 100_000]))
    opener, closer = (b"[", b"]") if rng.random() < 0.5 else (b'{"a":', b"}")
    nested = opener * depth + b"1" + closer * depth
    where = rng.integers(3)
    if where == 0:
        return [nested], {"bad_message", "too_large"}
    key = ["options", "frames", "id"][rng.integers(3)]
    return [b'{"protocol": 1, "id": "deep", "kind": "info", "' + key.encode() + b'": ' + nested + b"}"], \
        {"bad_message", "too_large"}


def huge_header(rng):
    padding = "x" * int(rng.choice([70_000, 300_000, 2_000_000]))
    return [header(rng, kind="info", padding=padding)], {"too_large"}


def bad_protocol_field(rng):
    value = [None, True, "1", 1.0, 2, 0, -1, [1], {"v": 1}, 2 ** 70][rng.integers(10)]
    fields = {"id": "p", "kind": "info"}
    if value is not None or rng.random() < 0.5:
        fields["protocol"] = value
    return [json.dumps(fields).encode()], {"bad_version"}


def bad_id(rng):
    value = [None, 7, True, [], {}, "", "i" * 5000][rng.integers(7)]
    fields = {"protocol": 1, "kind": "ping"}
    if value is not None:
        fields["id"] = value
    return [json.dumps(fields).encode()], {"bad_message"}


def bad_kind(rng):
    value = [None, 3, True, [], "", "teleport", "INFO", "k" * 10_000][rng.integers(8)]
    return [header(rng, **({"kind": value} if value is not None else {}))], {"bad_message", "unknown_kind"}


def unknown_header_field(rng):
    return [header(rng, kind="ping", **{["extra", "opts", "frame", "Kind"][rng.integers(4)]: 1})], {"bad_message"}


def options_not_an_object(rng):
    kind = protocol.KINDS[rng.integers(len(protocol.KINDS))]
    value = [[], [1], "detect", 3, True][rng.integers(5)]
    return [header(rng, kind=kind, options=value)], {"bad_message"}


def options_on_kinds_without_options(rng):
    kind = ["info", "ping"][rng.integers(2)]
    return [header(rng, kind=kind, options={"detect": True})], {"bad_message"}


def payload_on_kinds_without_payloads(rng):
    description, data = raw_frame((16, 16, 3))
    kind = ["info", "ping"][rng.integers(2)]
    return [header(rng, kind=kind, frames=[description]), data], {"bad_message"}


def bad_cancel(rng):
    options = [{}, {"target": None}, {"target": 5}, {"target": ["a"]}, {"target": ""},
               {"target": "t" * 1000}, {"target": "x", "also": 1}][rng.integers(7)]
    return [header(rng, kind="cancel", options=options)], {"bad_message"}


def bad_batch(rng):
    """Batch requests that must be refused before anything touches the server's disk: missing or
    wrong-typed paths, relative paths, paths with NUL, estimate options of the wrong kind."""
    good = {"inputs": ["/nonexistent/face.png"], "output": "/nonexistent/out"}
    field, value = [("inputs", None), ("inputs", []), ("inputs", "/a.png"), ("inputs", [7]), ("inputs", [None]),
                    ("inputs", ["a.png"]), ("inputs", ["../../etc"]), ("inputs", ["/a\0b"]), ("inputs", ["/" * 5000]),
                    ("output", None), ("output", ""), ("output", "out"), ("output", ["/out"]), ("output", True),
                    ("estimate", []), ("estimate", "x"), ("estimate", {"detect": "no"}),
                    ("estimate", {"size": 3}), ("workers", 2)][rng.integers(19)]
    options = {**good, field: value} if value is not None else {k: v for k, v in good.items() if k != field}
    frames = [header(rng, kind="batch", options=options)]
    if rng.random() < 0.2:      # well-formed options, but a batch carries no images
        frames = [header(rng, kind="batch", options=good, frames=[{"encoding": "image"}]), b"x"]
    return frames, {"bad_message"}


def unknown_estimate_option(rng):
    description, data = raw_frame((16, 16, 3))
    name = ["Detect", "detection", "size", "device", "__class__"][rng.integers(5)]
    return _estimate_of(rng, description, data, **{name: True}), {"bad_message"}


def wrong_typed_bool_option(rng):
    description, data = raw_frame((16, 16, 3))
    name = ["detect", "mask"][rng.integers(2)]
    value = [v for v in WRONG_TYPES if not isinstance(v, bool)][rng.integers(len(WRONG_TYPES) - 1)]
    return _estimate_of(rng, description, data, **{name: value}), {"bad_message"}


def wrong_enum_option(rng):
    description, data = raw_frame((16, 16, 3))
    name = ["convention", "normals_dtype"][rng.integers(2)]
    value = WRONG_TYPES[rng.integers(len(WRONG_TYPES))] if rng.random() < 0.5 else \
        ["OpenGL", "float64", "uint8", "sideways"][rng.integers(4)]
    return _estimate_of(rng, description, data, **{name: value}), {"bad_message"}


def bad_focal_length(rng):
    description, data = raw_frame((16, 16, 3))
    value = ["50", True, [], {}, 0, -50, 0.5, 1e308, 10 ** 400 if rng.random() < 0.3 else 6000][rng.integers(9)]
    frames = _estimate_of(rng, description, data, focal_35mm=value)
    if rng.random() < 0.3:   # JSON's unofficial NaN and Infinity, which Python's parser accepts
        frames[0] = frames[0].replace(json.dumps(value).encode(), [b"NaN", b"Infinity", b"-Infinity"][rng.integers(3)])
    return frames, {"bad_message"}


def frames_not_a_list(rng):
    value = ["image", {"encoding": "image"}, 2, True][rng.integers(4)]
    return [header(rng, kind="estimate", frames=value), b"x"], {"bad_message"}


def frame_count_mismatch(rng):
    described = int(rng.integers(0, 4))
    sent = int(rng.integers(0, 4))
    if described == sent:
        sent += 1
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}] * described), *[b"x"] * sent], \
        {"bad_message"}


def bad_frame_description(rng):
    value = ["image", 3, None, [], {"encoding": "png"}, {"encoding": "image", "dtype": "uint8"},
             {"dtype": "uint8"}, {"shape": [4, 4]}, {"dtype": "uint8", "shape": [4, 4], "order": "F"}][rng.integers(9)]
    return [header(rng, kind="estimate", frames=[value]), bytes(48)], {"bad_message"}


def bad_dtype(rng):
    value = ["int64", "float64", "object", "<f4", "", "uint8 ", None, 8, ["uint8"]][rng.integers(9)]
    return [header(rng, kind="estimate", frames=[{"dtype": value, "shape": [4, 4, 3]}]), bytes(48)], {"bad_message"}


def bad_shape(rng):
    value = [None, "4x4", [4], [4, 4, 3, 1], [0, 4], [-4, 4], [4.0, 4.0], [True, True], ["4", "4"],
             [[4], [4]], [], 16][rng.integers(12)]
    return [header(rng, kind="estimate", frames=[{"dtype": "uint8", "shape": value}]), bytes(16)], {"bad_message"}


def overflowing_shape(rng):
    """Products that wrap around in 64-bit arithmetic (2**64 + small) or exceed any memory."""
    shape = [[2 ** 32, 2 ** 32, 1], [2 ** 33, 2 ** 31, 3], [2 ** 62, 4, 4], [2 ** 63, 2, 1],
             [3037000500, 3037000500, 3], [2 ** 100, 1]][rng.integers(6)]
    return [header(rng, kind="estimate", frames=[{"dtype": "float32", "shape": shape}]), bytes(48)], \
        {"too_large", "bad_message"}


def byte_count_mismatch(rng):
    description, data = raw_frame((32, 32, 3), ["uint8", "uint16", "float32"][rng.integers(3)])
    cut = int(rng.integers(1, len(data)))
    data = data[:-cut] if rng.random() < 0.5 else data + bytes(cut)
    return [header(rng, kind="estimate", frames=[description]), data], {"bad_message"}


def bad_channel_count(rng):
    channels = int(rng.choice([5, 6, 16, 100]))
    description, data = raw_frame((32, 32, channels), ["uint8", "float32"][rng.integers(2)])
    detect = bool(rng.random() < 0.5)
    return _estimate_of(rng, description, data, detect=detect), {"bad_image", "too_large"}


def bad_image_sides(rng):
    shape = [(100_000, 1, 3), (1, 100_000, 3), (8, 8, 3), (15, 400, 1), (2000, 16, 3),
             (20_000, 20_000, 3)][rng.integers(6)]
    description = {"dtype": "uint8", "shape": list(shape)}
    data = bytes(int(np.prod(shape))) if np.prod(shape) < 10_000_000 else b""
    detect = bool(rng.random() < 0.5)
    return _estimate_of(rng, description, data, detect=detect), {"bad_image", "bad_message", "too_large"}


def non_finite_pixels(rng):
    image = rng.random((32, 32, 3)).astype(np.float32)
    image[rng.integers(32), rng.integers(32)] = [np.nan, np.inf, -np.inf][rng.integers(3)]
    description = {"dtype": "float32", "shape": [32, 32, 3]}
    return _estimate_of(rng, description, image.tobytes(), detect=False), {"bad_image"}


def no_images(rng):
    return [header(rng, kind="estimate", frames=[])], {"bad_message"}


def too_many_images(rng):
    count = int(rng.choice([33, 100, 1000]))
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}] * count), *[b"x"] * count], {"too_large"}


def not_an_image_file(rng):
    data = [b"", b"GIF89a" + bytes(20), b"hello, world", bytes(rng.integers(0, 256, 500, np.uint8)),
            b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"%PDF-1.4"][rng.integers(7)]
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}]), data], {"bad_image"}


def truncated_image_file(rng):
    fmt = ["PNG", "JPEG", "WEBP"][rng.integers(3)]
    data = encoded(rng, fmt)
    cut = data[:int(len(data) * rng.uniform(0.1, 0.99))]
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}]), cut], {"bad_image"}


def file_declaring_many_pixels(rng):
    width, height = [(7000, 7000), (60_000, 60_000), (5000, 5000), (2 ** 31 - 1, 2 ** 31 - 1)][rng.integers(4)]
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}]), png_declaring(width, height)], \
        {"too_large", "bad_image"}


def many_small_files_declaring_many_pixels(rng):
    count = int(rng.integers(2, 32))
    return [header(rng, kind="estimate", frames=[{"encoding": "image"}] * count),
            *[png_declaring(3000, 3000)] * count], {"too_large"}


def frames_in_the_wrong_order(rng):
    description, data = raw_frame((16, 16, 3))
    return [data, header(rng, kind="estimate", frames=[description])], {"bad_message", "bad_version"}


CLASSES = [not_json, not_utf8, json_not_an_object, deep_nesting, huge_header, bad_protocol_field,
           bad_id, bad_kind, unknown_header_field, options_not_an_object,
           options_on_kinds_without_options, payload_on_kinds_without_payloads, bad_cancel, bad_batch,
           unknown_estimate_option, wrong_typed_bool_option, wrong_enum_option, bad_focal_length,
           frames_not_a_list, frame_count_mismatch, bad_frame_description, bad_dtype, bad_shape,
           overflowing_shape, byte_count_mismatch, bad_channel_count, bad_image_sides,
           non_finite_pixels, no_images, too_many_images, not_an_image_file, truncated_image_file,
           file_declaring_many_pixels, many_small_files_declaring_many_pixels,
           frames_in_the_wrong_order]


def reply_to(socket, timeout_ms: int) -> dict | None:
    """The next final reply's header on a raw DEALER socket (heartbeats and progress skipped),
    or None if nothing final comes within timeout_ms of the last message."""
    while socket.poll(timeout_ms):
        header = protocol.decode(socket.recv_multipart()).header
        if header.get("kind") not in ("heartbeat", "progress"):
            return header
    return None


def errors_of(reply: dict) -> set[str]:
    """The error codes in a reply: the whole request's, or each image's in a result."""
    if reply.get("kind") == "error":
        return {str(reply.get("code"))}
    if reply.get("kind") == "result":
        return {r.get("code") for r in reply.get("results", []) if not r.get("ok")}
    return set()
