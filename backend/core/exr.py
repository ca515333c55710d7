"""A multilayer OpenEXR writer in numpy and zlib: named layers of 32-bit float channels in one
scanline file, ZIP-compressed (16 lines a block), as compositors and Blender read them.

    write_multilayer(path, {"normal": (H, W, 3), "albedo": (H, W, 3), "height": (H, W), ...})

A layer of 3 channels is written as <layer>.R/G/B ("normal" as <layer>.X/Y/Z, raw vectors), a
layer of one channel as <layer>.Y.  Shared by the backend (`predict --exr`) and the add-on (whose
Python has no OpenEXR library).  The format: openexr.com, "OpenEXR File Layout".
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = 20000630
FLOAT = 2                   # the channel's pixel type
ZIP_COMPRESSION = 3         # zlib over 16 scanlines, bytes split and delta-coded first
LINES_PER_BLOCK = 16
VECTOR_LAYERS = {"normal"}  # named X, Y, Z rather than R, G, B


def channel_names(layer: str, channels: int) -> list[str]:
    if channels == 1:
        return [f"{layer}.Y"]
    suffixes = "XYZ" if layer in VECTOR_LAYERS else "RGBA"
    return [f"{layer}.{suffix}" for suffix in suffixes[:channels]]


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _header(names: list[str], width: int, height: int) -> bytes:
    channels = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", FLOAT, 0, 1, 1) for name in names) + b"\0"
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    return (struct.pack("<ii", MAGIC, 2)
            + _attribute("channels", "chlist", channels)
            + _attribute("compression", "compression", bytes([ZIP_COMPRESSION]))
            + _attribute("dataWindow", "box2i", window)
            + _attribute("displayWindow", "box2i", window)
            + _attribute("lineOrder", "lineOrder", b"\0")
            + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
            + _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
            + _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")


def _zip(raw: bytes) -> bytes:
    """EXR's ZIP: the bytes split into even and odd halves, delta-coded, then deflated; kept raw
    when that is not smaller (a reader tells them apart by the size)."""
    data = np.frombuffer(raw, np.uint8)
    split = np.concatenate([data[0::2], data[1::2]]).astype(np.int16)
    coded = split.copy()
    coded[1:] = (split[1:] - split[:-1] + 128) & 0xFF
    packed = zlib.compress(coded.astype(np.uint8).tobytes(), 6)
    return packed if len(packed) < len(raw) else raw


def write_multilayer(path: str | os.PathLike, layers: dict[str, np.ndarray]) -> None:
    """Write layers (each (H, W) or (H, W, C), C up to 4, the same H and W, top row first) to
    one EXR, whole or not at all (written under a temporary name, then renamed)."""
    columns: dict[str, np.ndarray] = {}
    for layer, values in layers.items():
        values = np.asarray(values, np.float32)
        planes = values[..., None] if values.ndim == 2 else values
        for index, name in enumerate(channel_names(layer, planes.shape[2])):
            columns[name] = planes[..., index]
    names = sorted(columns)                       # EXR keeps channels in alphabetical order
    height, width = columns[names[0]].shape
    if any(columns[name].shape != (height, width) for name in names):
        raise ValueError("every layer of an EXR must have the same size")
    # per scanline: each channel's row in turn, little-endian float32
    rows = np.stack([columns[name] for name in names], 1).astype("<f4")      # (H, channels, W)
    blocks = []
    for top in range(0, height, LINES_PER_BLOCK):
        data = _zip(rows[top:top + LINES_PER_BLOCK].tobytes())
        blocks.append(struct.pack("<ii", top, len(data)) + data)
    header = _header(names, width, height)
    offsets, position = [], len(header) + 8 * len(blocks)
    for block in blocks:
        offsets.append(position)
        position += len(block)
    target = Path(path)
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.partial.exr")
    temporary.write_bytes(header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks))
    os.replace(temporary, target)
