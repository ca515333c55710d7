"""Second-order spherical harmonics: the light on a matte surface as 9 numbers per colour.

Under any distant light, Lambertian shading is within a few percent a quadratic polynomial of
the normal (Ramamoorthi and Hanrahan, "An Efficient Representation for Irradiance Environment
Maps", 2001): shading(n) = basis(n) @ coefficients, with the 9 real SH functions below (orthonormal
on the sphere) and the coefficients those of the irradiance, the light already convolved with the
cosine lobe.  Normals in the camera frame, OpenGL convention: +x right, +y up, +z toward the
camera; coefficients in the order of `basis`: (0,0), (1,-1) y, (1,0) z, (1,1) x, (2,-2) xy,
(2,-1) yz, (2,0), (2,1) xz, (2,2).

The estimator's fallback fits these to a photo, training renders save them as truth, and the
add-on lights with them: the formulas are written once, here.
"""
from __future__ import annotations

import numpy as np

# the cosine lobe's SH coefficients per band: irradiance = BAND_GAIN[l] * radiance (pi, 2pi/3, pi/4)
BAND_GAIN = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5, np.float32)


def basis(normals: np.ndarray) -> np.ndarray:
    """(..., 3) unit normals -> (..., 9) the real SH functions at them."""
    x, y, z = (normals[..., i].astype(np.float32) for i in range(3))
    return np.stack([np.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
                     1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1),
                     1.092548 * x * z, 0.546274 * (x * x - y * y)], axis=-1)


def shade(normals: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """(..., 3) normals and (9,) or (9, C) irradiance coefficients -> (...) or (..., C) shading."""
    return basis(normals) @ np.asarray(coefficients, np.float32)


def distant_light(direction, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(9, C) irradiance coefficients of a distant light of unit radiance per colour channel from
    `direction` (toward the light): a Lambertian surface facing it gets shading about `colour`."""
    towards = np.asarray(direction, np.float32)
    towards = towards / np.linalg.norm(towards)
    return np.outer(BAND_GAIN * basis(towards), np.asarray(colour, np.float32))


def dominant_direction(coefficients: np.ndarray) -> np.ndarray:
    """The unit direction the light mostly comes from (band 1 of the luminance), or +z when the
    light is even all round."""
    coefficients = np.asarray(coefficients, np.float32)
    luminance = coefficients if coefficients.ndim == 1 else coefficients @ _LUMINANCE[:coefficients.shape[1]]
    direction = np.array([luminance[3], luminance[1], luminance[2]])
    length = float(np.linalg.norm(direction))
    return direction / length if length > 1e-8 else np.array([0.0, 0.0, 1.0], np.float32)


def fit(normals: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None, *,
        rounds: int = 6) -> np.ndarray:
    """(9, C) coefficients whose shading best explains values (N, C) at normals (N, 3): least
    squares reweighted `rounds` times with Cauchy weights, so that a minority of pixels that the
    model does not explain (highlights, shadows, hair, eyes) lose their say."""
    design = basis(normals).astype(np.float64)
    values = np.asarray(values, np.float64).reshape(len(design), -1)
    prior = np.ones(len(design)) if weights is None else np.asarray(weights, np.float64)
    robust = np.ones_like(prior)
    coefficients = np.zeros((9, values.shape[1]))
    for _ in range(rounds):
        w = np.sqrt(prior * robust)[:, None]
        coefficients = np.linalg.lstsq(design * w, values * w, rcond=None)[0]
        residual = np.abs(values - design @ coefficients).mean(axis=1)
        scale = 2.385 * max(float(np.median(residual)), 1e-6)   # Cauchy's constant x MAD
        robust = 1 / (1 + (residual / scale) ** 2)
    return coefficients.astype(np.float32)


_LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)   # linear Rec. 709
