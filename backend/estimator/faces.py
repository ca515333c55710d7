"""A face found in a photo: its 478 landmarks, its roll and how sure the models are of it.

Detection (detection.py) makes faces; the crops (geometry.py) and the replies read them.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

# Named landmarks of the 478 ("right" is the person's right: the image's left): the mesh's and
# the irises' centres.
LANDMARK_NAMES = {"right_eye_outer": 33, "right_eye_inner": 133, "left_eye_inner": 362,
                  "left_eye_outer": 263, "nose_tip": 1, "upper_lip": 13, "lower_lip": 14,
                  "right_mouth_corner": 61, "left_mouth_corner": 291, "chin": 152, "forehead": 10,
                  "right_iris": 468, "left_iris": 473}


@dataclasses.dataclass(frozen=True)
class Face:
    """A face found in a photo, in its pixels."""
    landmarks: np.ndarray    # (478, 3) x, y (pixels) and depth (pixels, toward the camera negative):
                             # the mesh's 468, the right iris's 5 (468: centre), the left's (473)
    roll: float              # degrees the face is turned counter-clockwise in the photo
    score: float             # the detector's probability that this is a face
    presence: float          # the face mesh's probability that its input holds a face

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x, y (top-left), width, height of the landmarks."""
        (x0, y0), (x1, y1) = self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    def point(self, name: str) -> np.ndarray:
        return self.landmarks[LANDMARK_NAMES[name], :2]

    def to_json(self) -> dict:
        """The face as a service reply and `predict --json` give it: box, roll, score and the
        named landmarks of LANDMARK_NAMES (all 478 are in `landmarks`)."""
        return {"box": [round(v, 2) for v in self.box], "roll": round(self.roll, 2),
                "score": round(self.score, 4), "presence": round(self.presence, 4),
                "landmarks": {name: [round(float(v), 2) for v in self.point(name)]
                              for name in LANDMARK_NAMES}}


def roll_from_eyes(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """Degrees counter-clockwise (as seen) of the line from the person's right eye to their left."""
    dx, dy = left_eye - right_eye
    return -math.degrees(math.atan2(dy, dx))
