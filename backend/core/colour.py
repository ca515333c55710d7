"""sRGB's transfer curve: photos and PNGs hold sRGB-encoded values, light adds up in linear ones."""
from __future__ import annotations

import numpy as np


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float32)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(np.asarray(values, np.float32), 0, None)
    return np.where(values <= 0.0031308, values * 12.92,
                    1.055 * np.power(values, 1 / 2.4) - 0.055).astype(np.float32)
