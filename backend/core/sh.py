"""Second-order spherical-harmonic lighting: 9 RGB coefficients of a distant environment's
radiance, and the diffuse irradiance they give a surface (Ramamoorthi and Hanrahan, 2001).

Coefficients are (9, 3) arrays (one column per colour channel), in the order L00, L1-1 (y),
L10 (z), L11 (x), L2-2 (xy), L2-1 (yz), L20, L21 (xz), L22, in the frame of the normals they
light (the estimator's: OpenGL camera space, +x right, +y up, +z toward the camera).  They are
radiance coefficients, as shaders/relight.py's `Lighting.sh` holds them, so a light the estimator
finds can be handed to the preview as it is: `shade(n, c)` equals relight's `sh_irradiance(n, c)`.

    shade(n, c) = basis(n) @ c        irradiance at unit normals n: the image is albedo * shade
    project_light(d, colour)          the coefficients of a distant light from direction d: exact
                                      (a delta light's projection); shading from them is the
                                      second-order approximation of max(n.d, 0) (0.03 off on
                                      average over the sphere, 0.094 at most, at grazing, for
                                      1 facing the light; measured)

`basis_terms` is written with arithmetic alone, so torch tensors go through it as numpy arrays
do (the training losses build their basis from it: the maths lives here once).  numpy only.
"""
from __future__ import annotations

import numpy as np

COEFFICIENTS = 9
# fit() holds bands 1 and 2 near zero unless the pixels ask for them (a ridge of this fraction of
# the pixels' total weight per coefficient): where the normals span little, a nearly flat patch,
# those bands are nearly collinear with the constant one, and plain least squares gave
# coefficients a hundred times the light's, wild beyond those normals (stronger ridges: docs/
# relighting.md, measured; they bias an exactly lit sphere's light by 8-22 degrees)
FIT_RIDGE = 1e-5
# Ramamoorthi and Hanrahan's irradiance constants (the cosine lobe's convolution folded in)
C1, C2, C3, C4, C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708
# The real spherical harmonics' normalisations, bands 0 to 2
Y0, Y1, Y2, Y20, Y22 = 0.282095, 0.488603, 1.092548, 0.315392, 0.546274
# Seen in a mirror (x -> -x) the coefficients odd in x change sign: L11 (x), L2-2 (xy), L21 (xz)
MIRROR_SIGNS = np.array([1, 1, 1, -1, -1, 1, 1, -1, 1], np.float32)
# Rec. 709 luminance of linear RGB: how a coloured light's direction is judged
LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)


def basis_terms(x, y, z) -> list:
    """The 9 irradiance basis functions at normal components x, y, z (arrays or tensors)."""
    return [C4 + 0 * x, 2 * C2 * y, 2 * C2 * z, 2 * C2 * x, 2 * C1 * x * y, 2 * C1 * y * z,
            C3 * z * z - C5, 2 * C1 * x * z, C1 * (x * x - y * y)]


def basis(normals: np.ndarray) -> np.ndarray:
    """(..., 9) irradiance basis at unit normals (..., 3): shade(n, c) = basis(n) @ c, so a light
    that explains an image is a linear least-squares fit on it."""
    normals = np.asarray(normals, np.float32)
    return np.stack(basis_terms(normals[..., 0], normals[..., 1], normals[..., 2]), -1)


def shade(normals: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """(..., 3) irradiance at unit normals (..., 3) from (9, 3) coefficients (not clipped: a
    second-order light dips a little below zero on faces turned away from it)."""
    return basis(normals) @ np.asarray(coefficients, np.float32).reshape(COEFFICIENTS, 3)


def radiance_basis(directions: np.ndarray) -> np.ndarray:
    """(..., 9) the real spherical harmonics themselves at unit directions (..., 3)."""
    d = np.asarray(directions, np.float64)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return np.stack([np.full_like(x, Y0), Y1 * y, Y1 * z, Y1 * x, Y2 * x * y, Y2 * y * z,
                     Y20 * (3 * z * z - 1), Y2 * x * z, Y22 * (x * x - y * y)], -1)


def project_light(direction, colour) -> np.ndarray:
    """(9, 3) coefficients of a distant light toward `direction` (normalised here) whose
    irradiance on a surface facing it is about `colour` (RGB, linear)."""
    d = np.asarray(direction, np.float64)
    d = d / max(float(np.linalg.norm(d)), 1e-12)
    return np.outer(radiance_basis(d), np.asarray(colour, np.float64)).astype(np.float32)


# Directions the rotation is fitted on: more than 9, spread over the sphere (a Fibonacci lattice)
_k = np.arange(32) + 0.5
_FIT = np.stack([np.sqrt(1 - (1 - 2 * _k / 32) ** 2) * np.cos(np.pi * (1 + 5 ** 0.5) * _k),
                 np.sqrt(1 - (1 - 2 * _k / 32) ** 2) * np.sin(np.pi * (1 + 5 ** 0.5) * _k),
                 1 - 2 * _k / 32], -1)


def rotate(coefficients: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The coefficients of the same light for normals given in another frame, n' = n @ rotation
    (rotation (3, 3) orthogonal, reflections allowed): shade(n @ rotation, result) equals
    shade(n, coefficients).  Exact: each band of the harmonics maps onto itself under a rotation,
    so a least-squares fit on enough directions recovers the turned coefficients."""
    c = np.asarray(coefficients, np.float64).reshape(COEFFICIENTS, -1)
    rotation = np.asarray(rotation, np.float64)
    turned = np.linalg.lstsq(radiance_basis(_FIT @ rotation), radiance_basis(_FIT) @ c, rcond=None)[0]
    return turned.astype(np.float32)


def mirror(coefficients: np.ndarray) -> np.ndarray:
    """The light of a photo seen in a mirror (x -> -x), for (..., 9, 3) coefficients."""
    return np.asarray(coefficients) * MIRROR_SIGNS[:, None]


def dominant_direction(coefficients: np.ndarray) -> np.ndarray:
    """(..., 3) unit direction the light comes from most (its first band, by luminance)."""
    grey = np.asarray(coefficients, np.float64) @ LUMINANCE
    first = np.stack([grey[..., 3], grey[..., 1], grey[..., 2]], -1)
    return first / np.maximum(np.linalg.norm(first, axis=-1, keepdims=True), 1e-12)


def direction_error(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Degrees between two lights' dominant directions."""
    cosine = (dominant_direction(predicted) * dominant_direction(truth)).sum(-1)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def fit(normals: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None, *,
        rounds: int = 6) -> np.ndarray:
    """(9, 3) coefficients whose shading best explains linear colours (N, 3) at unit normals
    (N, 3): least squares, reweighted `rounds` times with Cauchy weights so that a minority of
    pixels the light does not explain (highlights, shadows, hair, eyes) lose their say."""
    design = basis(normals).astype(np.float64)
    values = np.asarray(values, np.float64).reshape(len(design), -1)
    prior = np.ones(len(design)) if weights is None else np.asarray(weights, np.float64)
    robust = np.ones_like(prior)
    coefficients = np.zeros((COEFFICIENTS, values.shape[1]))
    held = np.diag([0.0] + [1.0] * (COEFFICIENTS - 1))     # bands 1 and 2, not the constant
    for _ in range(rounds):
        w = np.sqrt(prior * robust)[:, None]
        penalty = np.sqrt(FIT_RIDGE * float((w ** 2).sum())) * held
        coefficients = np.linalg.lstsq(np.vstack([design * w, penalty]),
                                       np.vstack([values * w, np.zeros((COEFFICIENTS, values.shape[1]))]),
                                       rcond=None)[0]
        residual = np.abs(values - design @ coefficients).mean(axis=1)
        scale = 2.385 * max(float(np.median(residual)), 1e-6)   # Cauchy's constant x the median
        robust = 1 / (1 + (residual / scale) ** 2)
    return coefficients.astype(np.float32)
