"""A 16-bit RGB PNG writer in numpy + zlib (Blender's own image saving applies view transforms
and bit depths we do not want to depend on; a normal map must be stored exactly)."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png(path: str, pixels: np.ndarray) -> None:
    """pixels: (H, W, 3) uint16 RGB or (H, W) uint8 / uint16 gray, top row first."""
    height, width = pixels.shape[:2]
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        depth, colour = 16, 2
        rows = pixels.astype(">u2").reshape(height, -1).view(np.uint8)
    elif pixels.dtype == np.uint8 and pixels.ndim == 2:
        depth, colour = 8, 0
        rows = pixels
    elif pixels.dtype == np.uint16 and pixels.ndim == 2:
        depth, colour = 16, 0
        rows = pixels.astype(">u2").view(np.uint8)
    else:
        raise ValueError("write_png takes (H, W, 3) uint16 or (H, W) uint8 or uint16")
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b""))
