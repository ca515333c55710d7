"""Faces tracked over frames: the One-Euro filter steadies a still face, follows a moving one,
and starts afresh at a cut or when the face is gone."""
from __future__ import annotations

import numpy as np

from backend.batch.tracking import FaceTracker, OneEuroFilter
from backend.estimator.faces import Face


def _face(rng, offset=(0.0, 0.0), noise=1.5) -> Face:
    """A face of ~100 pixels: 478 points spread like a face's, with detector-like noise."""
    base = np.random.default_rng(1).uniform(-50, 50, (478, 3)).astype(np.float32)
    base[33, :2], base[263, :2] = (-30, -20), (30, -20)       # the eyes' outer corners
    base[[133, 362], :2] = (-10, -20), (10, -20)
    base[[13, 14, 61, 291], :2] = (0, 30), (0, 32), (-20, 30), (20, 30)
    points = base + rng.normal(0, noise, base.shape).astype(np.float32)
    points[:, :2] += np.array(offset, np.float32) + 200
    return Face(points, 0.0, 0.9, 0.9)


def test_a_still_face_is_held_steadier_than_its_detections():
    rng = np.random.default_rng(0)
    tracker = FaceTracker(fps=24)
    raw, smoothed = [], []
    for _ in range(48):
        face = _face(rng)
        raw.append(face.landmarks)
        [steady] = tracker([face])
        smoothed.append(steady.landmarks)
    jitter = lambda frames: np.abs(np.diff(np.stack(frames[12:]), axis=0)).mean()   # noqa: E731
    assert jitter(smoothed) < 0.3 * jitter(raw)
    assert tracker.resets == 0


def test_a_moving_face_is_followed_without_falling_behind():
    rng = np.random.default_rng(0)
    tracker = FaceTracker(fps=24)
    for t in range(48):
        [followed] = tracker([_face(rng, offset=(2.0 * t, 0.0), noise=0.5)])
    # moving 48 pixels a second, it ends within a few pixels of where it is
    assert abs(followed.centre[0] - _face(np.random.default_rng(5), offset=(94.0, 0.0), noise=0).centre[0]) < 4


def test_a_cut_or_a_lost_face_starts_afresh():
    rng = np.random.default_rng(0)
    tracker = FaceTracker(fps=24)
    for _ in range(5):
        tracker([_face(rng)])
    far = _face(rng, offset=(300.0, 0.0))
    [after_cut] = tracker([far])
    assert np.array_equal(after_cut.landmarks, far.landmarks) and tracker.resets == 1
    assert tracker([]) == [] and tracker.resets == 2
    again = _face(rng)
    [first] = tracker([again])
    assert np.array_equal(first.landmarks, again.landmarks)


def test_the_one_euro_filter_at_rest_is_a_low_pass():
    filtered = OneEuroFilter(1 / 24, min_cutoff=1.0, beta=0.0)
    out = [filtered(np.array([v])) for v in [0.0] + [1.0] * 24]
    assert 0 < out[1][0] < 0.5 and out[-1][0] > 0.95          # a step, followed smoothly
