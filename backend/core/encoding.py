"""Normals and masks as the integers that files and the wire hold: a normal n as the colour
n * 0.5 + 0.5 scaled to 0..65535 (16 bits), a mask's 0..1 as 0..255 (8 bits)."""
from __future__ import annotations

import numpy as np


def normals_to_uint16(normals: np.ndarray) -> np.ndarray:
    return np.round((np.clip(normals, -1, 1) * 0.5 + 0.5) * 65535).astype(np.uint16)


def normals_from_uint16(coded: np.ndarray) -> np.ndarray:
    return coded.astype(np.float32) / 65535 * 2 - 1


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    return np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8)


def mask_from_uint8(coded: np.ndarray) -> np.ndarray:
    return coded.astype(np.float32) / 255
