"""Faces followed from frame to frame, their landmarks smoothed over time so a clip's crops do not
jitter (the estimator cuts its crops from the faces a Photo's `track` returns).

Each face's 478 landmarks go through One-Euro filters (Casiez, Roussel and Vogel, CHI 2012): a
low-pass whose cut-off rises with the signal's speed, so a still face is held steady against the
detector's frame-to-frame noise while a moving one is followed without lag.  The face's position
(its landmarks' mean) and its shape (the landmarks around that mean) are filtered apart: a camera
that shakes moves the whole face, and the mean of 478 points is known far better than any one of
them, so the position is followed closely while the shape, where the detector's noise is, is
smoothed hard.  (One filter for every landmark lagged the shake, so the crops moved on the face
and the normals flickered more than with no smoothing: docs/batch.md.)  Positions are filtered
in units of the face's size, so the same settings suit a face of 100 or 1000 pixels.  A
track starts afresh when no face is found, when the number of faces changes, or when a face
jumps by more than CUT_JUMP face sizes between frames (a cut).
"""
from __future__ import annotations

import math

import numpy as np

from ..estimator.faces import Face, roll_from_eyes
from ..estimator.geometry import face_size

# One-Euro settings, for positions in face sizes and time in seconds: at rest the cut-off is
# MIN_CUTOFF Hz; it rises by BETA Hz per face size a second of speed (a mouth opening at a face
# size a second is followed at MIN_CUTOFF + BETA Hz).  Tuned on benchmarks/flicker.py's shaking
# clip (its crops' jitter on the face, docs/batch.md): the shape smoothed hard, the position
# followed as soon as it moves (a shake of a pixel a frame on a 40-pixel face is ~0.7 face
# sizes a second: ~180 Hz, no lag), held at rest.
MIN_CUTOFF = 0.5
BETA = 4.0
CENTRE_MIN_CUTOFF = 4.0
CENTRE_BETA = 256.0
DERIVATIVE_CUTOFF = 1.0
CUT_JUMP = 0.5


def _alpha(cutoff: np.ndarray | float, interval: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / interval)


class OneEuroFilter:
    """The One-Euro filter over arrays (every element its own signal), sampled every `interval` s."""

    def __init__(self, interval: float, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
                 derivative_cutoff: float = DERIVATIVE_CUTOFF):
        self.interval, self.min_cutoff, self.beta = interval, min_cutoff, beta
        self.derivative_alpha = _alpha(derivative_cutoff, interval)
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        if self.value is None or self.speed is None:
            self.value, self.speed = value.copy(), np.zeros_like(value)
            return self.value.copy()
        speed = (value - self.value) / self.interval
        self.speed = self.speed + self.derivative_alpha * (speed - self.speed)
        alpha = _alpha(self.min_cutoff + self.beta * np.abs(self.speed), self.interval)
        self.value = self.value + alpha * (value - self.value)
        return self.value.copy()


class _Track:
    def __init__(self, face: Face, interval: float):
        self.scale = face_size(face)
        self.centre = OneEuroFilter(interval, CENTRE_MIN_CUTOFF, CENTRE_BETA)
        self.shape = OneEuroFilter(interval)
        self.face = self.update(face)

    def update(self, face: Face) -> Face:
        points = face.landmarks.astype(np.float64) / self.scale
        centre = points.mean(0, keepdims=True)
        landmarks = (self.centre(centre) + self.shape(points - centre)) * self.scale
        landmarks = landmarks.astype(np.float32)
        self.face = Face(landmarks, roll_from_eyes(landmarks[33, :2], landmarks[263, :2]), face.score,
                         face.presence)
        return self.face


class FaceTracker:
    """Call with each frame's detected faces, in frame order: the faces smoothed over time
    (a Photo's `track`)."""

    def __init__(self, fps: float):
        self.interval = 1.0 / fps
        self.tracks: list[_Track] = []
        self.resets = 0         # how many times a track started afresh after the first frame

    def __call__(self, faces: list[Face]) -> list[Face]:
        if not faces or len(faces) != len(self.tracks) or not self._continues(faces):
            if self.tracks:
                self.resets += 1
            self.tracks = [_Track(face, self.interval) for face in faces]
            return [track.face for track in self.tracks]
        order = self._matching(faces)
        return [track.update(faces[index]) for track, index in zip(self.tracks, order)]

    def _matching(self, faces: list[Face]) -> list[int]:
        """For each track, the nearest face (by centre), each face used once, greedily."""
        free = list(range(len(faces)))
        order = []
        for track in self.tracks:
            nearest = min(free, key=lambda i: math.dist(faces[i].centre, track.face.centre))
            free.remove(nearest)
            order.append(nearest)
        return order

    def _continues(self, faces: list[Face]) -> bool:
        """Whether every track's face is still near where it was (no cut)."""
        order = self._matching(faces)
        return all(math.dist(faces[i].centre, track.face.centre) <= CUT_JUMP * track.scale
                   for track, i in zip(self.tracks, order))
