"""The flicker benchmark's measurement (backend/benchmarks/flicker.py) counts only what the
estimate changes, not the person moving with the camera; and the tracker's smoothing, on the
real detector's faces, never makes a clip's crops jitter on the face more than detection alone."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.batch.tracking import FaceTracker
from backend.benchmarks.flicker import crop_jitter, flicker, shaky_clip
from backend.estimator.detection import FaceDetector

SIZE = 512


def _normals_of(height: np.ndarray) -> np.ndarray:
    """A height field's normals (OpenGL: x right, y up, z to the viewer)."""
    dy, dx = np.gradient(height)                # rows run down the image
    normals = np.stack([-dx, dy, np.ones_like(height)], -1)
    return (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).astype(np.float32)


def test_a_surface_that_moves_with_the_camera_does_not_flicker_and_a_stuck_one_does():
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    height = 60 * np.exp(-((xx - 256) ** 2 + (yy - 240) ** 2) / (2 * 90.0 ** 2))   # a dome, a head
    height += 4 * np.sin(xx / 9) * np.cos(yy / 13)                               # with detail
    # turns far bigger than the benchmark's, so a roll undone the wrong way (~2 degrees a frame) or
    # not at all (~1.2) shows; resampling a turned surface costs ~0.5 degrees, a shift ~0.01
    motions = [cv2.getRotationMatrix2D((256, 256), 3.0 * t, 1.0) + [[0, 0, 2.0 * t], [0, 0, -t]] for t in range(8)]
    filmed = [_normals_of(cv2.warpAffine(height, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC)) for m in motions]
    masks = [cv2.warpAffine(np.ones((SIZE, SIZE), np.float32), m, (SIZE, SIZE)) for m in motions]
    moving_with_it = flicker(filmed, masks, motions)
    stuck_in_the_frame = flicker([filmed[0]] * len(motions), masks, motions)
    assert moving_with_it < 0.75 and stuck_in_the_frame > 10 * moving_with_it, (moving_with_it, stuck_in_the_frame)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(device="cpu")


def _crop_jitter(detector, clip, motions) -> tuple[float, float]:
    """(detection alone, tracked and smoothed): the crops' jitter on the face."""
    detected = [detector.detect(frame)[0] for frame in clip]
    tracker = FaceTracker(fps=24)
    tracked = [tracker([face])[0] for face in detected]
    assert tracker.resets == 0
    return crop_jitter(detected, motions), crop_jitter(tracked, motions)


def test_smoothing_holds_a_still_clips_crops_steadier_than_detection(detector, astronaut):
    image = astronaut.astype(np.float32) / 255
    rng = np.random.default_rng(3)
    clip = [np.clip(image + rng.normal(0, 3 / 255, image.shape), 0, 1).astype(np.float32) for _ in range(16)]
    still = [np.eye(2, 3)] * len(clip)
    alone, smoothed = _crop_jitter(detector, clip, still)
    assert smoothed < alone, (alone, smoothed)


def test_smoothing_follows_a_shaking_camera_and_still_steadies_the_crops_on_the_face(detector, astronaut):
    clip, motions = shaky_clip(astronaut.astype(np.float32) / 255, 24)
    alone, smoothed = _crop_jitter(detector, clip, motions)
    assert smoothed < alone, (alone, smoothed)     # one filter over all landmarks lagged: 0.764 vs 0.762 px
