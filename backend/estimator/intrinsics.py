"""Albedo, light and height from a photo and its normals: what a renderer needs beside the normals.

A v3 model predicts albedo and light per crop; `model_light` makes the photo's light of them and
`albedo_scale` reads the one factor per channel its albedo is known up to from the photo, so that
they keep what the fitted ones guarantee (below: the light averages 1 on the skin, and the photo
is the albedo times the shading there).  For a normals-only model (the 8th) they are fitted here,
the fallback and a baseline of the evaluation:
- light: second-order SH irradiance (core/sh.py) fitted to the photo's linear luminance on the
  faces' skin, robustly (eyes, brows, lips, highlights and stray hair lose their say), assuming the
  skin's colour is even there, and white (the photo's white balance is trusted).  One photo cannot
  tell a bright light on dark skin from a dim light on pale skin, so the light is scaled to average
  1 on the skin: the albedo keeps the photo's brightness.
- albedo: the linear photo divided by that shading, where the shading is bright enough to divide by
  (elsewhere it fades to the photo at the skin's average shading).
- height: the normals integrated over the person (Frankot-Chellappa over the photo mirrored at its
  edges: a least-squares Poisson solve with even boundaries, so no drift across the person and no
  seam where crops meet), flat off the person; in pixels of the photo, toward the camera.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..core import sh
from ..core.colour import srgb_to_linear
from .faces import Face

MIN_SHADING = 0.15          # of the skin's average: darker than this, dividing by it is noise
MAX_SLOPE = 5.0             # |dz/dx| at grazing normals (nz -> 0), where integration would blow up
HEIGHT_SIDE = 1024          # the height is solved at most this many pixels a side, then resized
FIT_PIXELS = 20_000         # skin pixels the light is fitted to (a random even sample)
MIN_READ_PIXELS = 50        # fewer readable skin pixels than this say nothing about the light
DARK_SKIN = 0.02            # a model's light shading the skin less than this (its mean over all
                            # directions being 1) does not light the face: it explains nothing


@dataclasses.dataclass
class Light:
    coefficients: np.ndarray   # (9, 3) SH irradiance per linear RGB channel, camera frame (OpenGL)
    direction: np.ndarray      # (3,) unit vector toward where the light mostly comes from
    source: str                # "fitted" (from the photo and its normals) or "model"

    @classmethod
    def from_json(cls, data: dict) -> Light:
        return cls(np.asarray(data["sh"], np.float32), np.asarray(data["direction"], np.float32), data["source"])

    def to_json(self) -> dict:
        return {"sh": [[round(float(v), 5) for v in row] for row in self.coefficients],
                "direction": [round(float(v), 4) for v in self.direction], "source": self.source,
                "frame": "camera, OpenGL (+x right, +y up, +z toward the camera)",
                "order": "(0,0) (1,-1) (1,0) (1,1) (2,-2) (2,-1) (2,0) (2,1) (2,2)"}


def skin(faces: list[Face], mask: np.ndarray) -> np.ndarray:
    """Where to read the light: the faces' landmark hulls (the whole person when no face was
    found, e.g. with detection off), within the person."""
    if not faces:
        return mask > 0.5
    region = np.zeros(mask.shape, np.uint8)
    for face in faces:
        hull = cv2.convexHull(face.landmarks[:468, :2].astype(np.float32))
        cv2.fillConvexPoly(region, np.round(hull).astype(np.int32), (1,))
    return (region > 0) & (mask > 0.5)


def readable(linear: np.ndarray) -> np.ndarray:
    """Where a linear photo (..., 3) tells of its light: no channel clipped, none black."""
    return (linear.max(-1) < 0.98) & (linear.min(-1) > 0.002)


def fit_light(photo: np.ndarray, normals: np.ndarray, region: np.ndarray, *, seed: int = 0) -> Light:
    """SH light explaining the sRGB photo (H, W, 3) at its normals on `region`, scaled to average
    1 there (see the module's docstring).  One shape, fitted to the luminance, and white: fitted
    channel by channel, the three shapes extrapolated apart beyond the skin's normals (the sides
    of the head, hair, clothes) and painted the albedo there in rainbows, and the light took the
    skin's colour, leaving the albedo's skin grey (a photo is white-balanced: its light is taken
    as white, and the colours stay in the albedo)."""
    linear = srgb_to_linear(photo)
    where = np.flatnonzero(region & readable(linear))
    if len(where) < MIN_READ_PIXELS:      # nothing to read the light from: even light from the front
        return Light(sh.project_light((0, 0, 1), (1, 1, 1)), np.array([0, 0, 1.0], np.float32), "fitted")
    if len(where) > FIT_PIXELS:
        where = np.random.default_rng(seed).choice(where, FIT_PIXELS, replace=False)
    flat_normals, values = normals.reshape(-1, 3)[where], linear.reshape(-1, 3)[where]
    coefficients = np.repeat(sh.fit(flat_normals, values @ sh.LUMINANCE), 3, axis=1)   # (9, 3), grey
    average = sh.shade(flat_normals, coefficients).mean(0)
    coefficients = coefficients / max(float(average.mean()), 1e-6)
    return Light(coefficients, sh.dominant_direction(coefficients), "fitted")


def model_light(crop_lights: np.ndarray, turns: list[np.ndarray], weights: list[float],
                skin_normals: np.ndarray) -> Light | None:
    """The photo's light from a v3 model's lights of its crops (N, 9, 3), each in its crop's frame:
    each turned into the photo's frame as the crop's normals are (photo normals = crop normals @
    turns[i]), their weighted mean, scaled so that its shading averages 1 in each channel over
    the skin's normals (M, 3), as the fitted light's does: one photo cannot tell a warm light
    from warm skin, so the colour stays in the albedo.  None when the model's light is unusable:
    no crop's is brighter than black, or it leaves the skin dark (the caller fits one instead).

    Each crop's light comes with its albedo's unknown scale per channel (training/losses.py), so
    before the mean each is brought to one brightness: its mean over all directions (C4 L00, which
    no turn changes) is 1 in luminance."""
    lights = np.stack([sh.rotate(light, turn) for light, turn in zip(crop_lights, turns)])
    brightness = (sh.C4 * lights[:, 0]) @ sh.LUMINANCE
    trusted = np.where(brightness > 1e-6, np.asarray(weights, np.float64), 0.0)
    if not trusted.any():
        return None
    mean = np.tensordot(trusted / np.maximum(brightness, 1e-6), lights, 1) / trusted.sum()
    if not len(skin_normals):      # no skin in sight: as if it faced the camera
        skin_normals = np.array([[0.0, 0.0, 1.0]])
    average = sh.shade(skin_normals, mean).mean(0)
    if average.min() < DARK_SKIN:
        return None
    coefficients = (mean / average).astype(np.float32)
    return Light(coefficients, sh.dominant_direction(coefficients).astype(np.float32), "model")


def albedo_scale(photo: np.ndarray, albedo: np.ndarray, shading: np.ndarray) -> np.ndarray:
    """(3,) the factor per channel that makes a v3 model's albedo times the shading explain the
    linear photo, from the three at the same pixels (N, 3) (the skin): the median of the photo over
    their product where the photo is neither clipped nor black and the shading bright enough to
    divide by; the median, so that highlights, cast shadows and eyes that a second-order light
    does not explain lose their say (as they do in the fit and in training's photometric term).
    1 where there is nothing to read it from."""
    usable = readable(photo) & (shading.min(-1) > MIN_SHADING) & (albedo.min(-1) > 1e-3)
    if usable.sum() < MIN_READ_PIXELS:
        return np.ones(3, np.float32)
    return np.median(photo[usable] / (albedo[usable] * shading[usable]), axis=0).astype(np.float32)


def albedo(photo: np.ndarray, normals: np.ndarray, light: Light) -> np.ndarray:
    """(H, W, 3) linear albedo: the photo divided by the light's shading at each normal."""
    linear = srgb_to_linear(photo)
    shading = sh.shade(normals, light.coefficients)
    trust = np.clip(shading / MIN_SHADING - 1, 0, 1)      # 0 below MIN_SHADING, 1 from twice it
    divided = linear / np.maximum(shading, MIN_SHADING)
    return (trust * divided + (1 - trust) * linear).astype(np.float32)


def height(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) height toward the camera in pixels of the photo, 0 off the person."""
    full = normals.shape[:2]
    scale = min(1.0, HEIGHT_SIDE / max(full))
    if scale < 1:
        size = (round(full[1] * scale), round(full[0] * scale))
        normals = cv2.resize(normals, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    nz = np.maximum(normals[..., 2], 1 / MAX_SLOPE)
    # slopes in image axes (rows grow downward, the normals' y upward), only on the person
    along_x = np.clip(-normals[..., 0] / nz, -MAX_SLOPE, MAX_SLOPE) * mask
    along_rows = np.clip(normals[..., 1] / nz, -MAX_SLOPE, MAX_SLOPE) * mask
    solved = _frankot_chellappa(along_x, along_rows) / scale
    if scale < 1:
        solved = cv2.resize(solved, (full[1], full[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        mask = cv2.resize(mask, (full[1], full[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    off = mask < 0.02
    solved -= float(np.median(solved[off])) if off.any() else float(solved.min())
    return (solved * (mask > 0.02)).astype(np.float32)


def _frankot_chellappa(along_x: np.ndarray, along_rows: np.ndarray) -> np.ndarray:
    """The surface whose gradient is closest (least squares) to the given one, with the field
    mirrored at the edges first: even boundaries, so nothing wraps round from the far side."""
    gx = np.block([[along_x, -along_x[:, ::-1]], [along_x[::-1], -along_x[::-1, ::-1]]])
    gy = np.block([[along_rows, along_rows[:, ::-1]], [-along_rows[::-1], -along_rows[::-1, ::-1]]])
    rows, cols = gx.shape
    u = 2 * np.pi * np.fft.fftfreq(cols)[None, :]
    v = 2 * np.pi * np.fft.fftfreq(rows)[:, None]
    # the spectral derivative i*w matched to forward differences: (e^{iw} - 1)
    du, dv = np.exp(1j * u) - 1, np.exp(1j * v) - 1
    denominator = np.abs(du) ** 2 + np.abs(dv) ** 2
    denominator[0, 0] = 1
    surface = (np.conj(du) * np.fft.fft2(gx) + np.conj(dv) * np.fft.fft2(gy)) / denominator
    surface[0, 0] = 0
    return np.real(np.fft.ifft2(surface))[:along_x.shape[0], :along_x.shape[1]].astype(np.float32)
