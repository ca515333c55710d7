"""Finding faces with OpenCV's Haar cascades: they ship inside the opencv-python-headless wheel, so
detection needs no download.  Frontal faces, plus profile faces looking either way."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

DETECTION_SIDE = 640  # photos are searched at most at this size: faster, and Haar needs no more


@dataclasses.dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in image pixels (x, y: top-left corner)."""
    x: float
    y: float
    width: float
    height: float
    score: float = 1.0

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    @property
    def area(self) -> float:
        return self.width * self.height

    def intersection(self, other: FaceBox) -> float:
        w = min(self.x + self.width, other.x + other.width) - max(self.x, other.x)
        h = min(self.y + self.height, other.y + other.height) - max(self.y, other.y)
        return max(w, 0) * max(h, 0)

    def iou(self, other: FaceBox) -> float:
        inter = self.intersection(other)
        return inter / (self.area + other.area - inter)


class FaceDetector:
    def __init__(self, *, min_face_fraction: float = 0.06, min_neighbours: int = 5,
                 scale_step: float = 1.15):
        folder = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in cv2's stubs
        self.frontal = cv2.CascadeClassifier(folder + "haarcascade_frontalface_alt2.xml")
        self.profile = cv2.CascadeClassifier(folder + "haarcascade_profileface.xml")
        if self.frontal.empty() or self.profile.empty():
            raise RuntimeError(f"OpenCV's face cascades are missing from {folder}")
        self.min_face_fraction = min_face_fraction
        self.min_neighbours = min_neighbours
        self.scale_step = scale_step

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an RGB float image (H, W, 3), largest first."""
        height, width = image.shape[:2]
        scale = min(1.0, DETECTION_SIDE / max(height, width))
        gray = cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(24, int(self.min_face_fraction * min(gray.shape)))

        found = self._run(self.frontal, gray, min_side)
        found += self._run(self.profile, gray, min_side)
        mirrored = self._run(self.profile, gray[:, ::-1].copy(), min_side)
        found += [dataclasses.replace(b, x=gray.shape[1] - b.x - b.width) for b in mirrored]

        faces = _suppress_overlaps(found)
        return [FaceBox(b.x / scale, b.y / scale, b.width / scale, b.height / scale, b.score)
                for b in faces]

    def _run(self, cascade: cv2.CascadeClassifier, gray: np.ndarray, min_side: int) -> list[FaceBox]:
        boxes, _levels, weights = cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_step, minNeighbors=self.min_neighbours, minSize=(min_side, min_side),
            outputRejectLevels=True)
        return [FaceBox(float(x), float(y), float(w), float(h), float(s))
                for (x, y, w, h), s in zip(boxes, np.ravel(weights))]


def _suppress_overlaps(boxes: list[FaceBox], threshold: float = 0.3) -> list[FaceBox]:
    """Keep the largest of boxes that overlap: the same face seen by two cascades, or a part of a
    face (an eye, a cheek) that a profile cascade mistook for a small face inside it."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.area, reverse=True):
        if all(box.intersection(k) < threshold * box.area for k in kept):
            kept.append(box)
    return kept
