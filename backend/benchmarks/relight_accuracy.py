"""Relighting and height against ground truth, on synthetic test people (`python -m
backend.benchmarks.relight --data FACEKIT`).

Each test person is rendered twice, the same pose and skin under light A and under light B
(synthetic.py's `light_seed`; a plain camera: exact sRGB, only the exposure differs).  From the
photo under A the shipped estimator predicts normals and the fallback fit (estimator/intrinsics.py)
an albedo (the light fitted on the faces' skin, as the service does); the add-on's relighting
model (shaders/relight.py, the numpy reference the GLSL is held to) relights it to B's true light,
and the result is compared with the true render under B on the
person: PSNR (sRGB, 0..1) and mean absolute error (sRGB levels of 255).  Rows, in one run:

  albedo (new)       the fitted albedo lit by B's light
  remove shading     the photo with Remove Original Shading (0.7) of a frontal guess divided out, lit
                     by B's light (the preview before albedo)
  unchanged photo    the photo under A as it is
  oracle             the true albedo and normals lit by B's light: what the model itself misses
                     (the renderer's key-light highlights, shadows and skin's scattering)

One photo cannot tell a bright light on dark skin from a dim light on pale skin (the fit scales its
light to average 1 on the skin), so every row's relit image is first scaled by the one gain that
best matches the truth on the person (least squares, linear light): the rows compare shading, not
exposure.

Height: the normals integrated over the person (intrinsics.height, Frankot-Chellappa) against the
renderer's depth, both in pixels, each less its mean on the face: the relative error
|h - d| / |d| (root mean squares over the face), from the true normals and from the predicted ones.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from shaders import relight as model

from ..core.colour import linear_to_srgb, srgb_to_linear
from ..estimator import intrinsics
from ..training.synthetic import Sample

ROWS = ("albedo (new)", "remove shading", "unchanged photo", "oracle")
LIGHT_SEED_OFFSET = 10_000       # light B of test person i is drawn from seed i + this


@dataclasses.dataclass
class Scores:
    psnr: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {row: [] for row in ROWS})
    mae: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {row: [] for row in ROWS})
    height_true: list[float] = dataclasses.field(default_factory=list)
    height_predicted: list[float] = dataclasses.field(default_factory=list)


def matched(relit_srgb: np.ndarray, truth_linear: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The relit image (sRGB) times the gain that best fits the truth (linear) on `where`, sRGB."""
    linear = srgb_to_linear(relit_srgb)
    gain = float((linear[where] * truth_linear[where]).sum() / max((linear[where] ** 2).sum(), 1e-12))
    return linear_to_srgb(np.clip(linear * gain, 0, 1))


def relit_rows(photo: Sample, found, target_light: np.ndarray) -> dict[str, np.ndarray]:
    """Each row's picture of the person under `target_light` (sRGB), from the photo under A and
    the estimator's NormalMap of it (`found`: its normals, faces and person mask, as the service
    fits the light: on the faces' skin)."""
    predicted_normals = found.normals
    light = intrinsics.fit_light(photo.image, predicted_normals, intrinsics.skin(found.faces, found.mask))
    albedo = intrinsics.albedo(photo.image, predicted_normals, light)
    lit = model.Lighting([], sh=target_light, specular=0.0)
    delit = model.Lighting([], sh=target_light, specular=0.0, delight=0.7)
    predicted_map = predicted_normals * 0.5 + 0.5
    return {"albedo (new)": model.relight(photo.image, predicted_map, lit, albedo=albedo),
            "remove shading": model.relight(photo.image, predicted_map, delit),
            "unchanged photo": photo.image,
            "oracle": model.relight(photo.image, photo.normals * 0.5 + 0.5, lit, albedo=photo.albedo)}


def height_error(normals: np.ndarray, sample: Sample) -> float:
    """Relative RMS error of the height integrated from `normals` against the true depth, on the face."""
    assert sample.depth is not None
    face = sample.mask > 0.5
    height = intrinsics.height(normals, sample.subject)
    truth = -sample.depth                                # toward the camera
    h, d = height[face] - height[face].mean(), truth[face] - truth[face].mean()
    return float(np.sqrt(np.mean((h - d) ** 2)) / max(np.sqrt(np.mean(d ** 2)), 1e-9))


def score(renderer, predict, count: int) -> Scores:
    """renderer: a FaceRenderer with a plain camera; predict(image) -> the estimator's NormalMap."""
    scores = Scores()
    for index in range(count):
        under_a = renderer.test_sample(index, "person")
        under_b = renderer.test_sample(index, "person", light_seed=index + LIGHT_SEED_OFFSET)
        person = (under_a.subject > 0.5) & (under_b.subject > 0.5)
        truth = srgb_to_linear(under_b.image)
        found = predict(under_a.image)
        for row, relit in relit_rows(under_a, found, under_b.light).items():
            shown = matched(relit, truth, person)
            error = shown[person] - under_b.image[person]
            scores.psnr[row].append(float(-10 * np.log10(max(np.mean(error ** 2), 1e-12))))
            scores.mae[row].append(float(np.abs(error).mean() * 255))
        scores.height_true.append(height_error(under_a.normals, under_a))
        scores.height_predicted.append(height_error(found.normals, under_a))
    return scores


def table(scores: Scores) -> str:
    count = len(scores.height_true)
    lines = [f"relighting to another light, {count} synthetic test people (exposure matched per image)",
             f"{'':<18}{'PSNR dB':>9}{'MAE /255':>10}"]
    for row in ROWS:
        lines.append(f"{row:<18}{np.mean(scores.psnr[row]):>9.2f}{np.mean(scores.mae[row]):>10.2f}")
    lines += ["height integrated from the normals vs the true depth (relative RMS error on the face)",
              f"{'from the true normals':<28}{np.mean(scores.height_true):>7.3f}",
              f"{'from the predicted normals':<28}{np.mean(scores.height_predicted):>7.3f}"]
    return "\n".join(lines)


def run(data: str, count: int, size: int, weights: str | None = None) -> Scores:
    from ..estimator import Estimator
    from ..training.facekit import FaceKit
    from ..training.synthetic import FaceRenderer
    from ..estimator.pipeline import NoFaceError
    estimator = Estimator(weights)
    renderer = FaceRenderer(FaceKit(data), size, plain_camera=True)

    def predict(image):      # as the service does; a face the detector misses, as a crop
        try:
            return estimator.normal_map(image)
        except NoFaceError:
            return estimator.normal_map(image, detect=False)
    return score(renderer, predict, count)
