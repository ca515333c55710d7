"""Finding faces and their landmarks with MediaPipe's face models, run in PyTorch (graph_module.py).

photo -> BlazeFace short-range (128², whole photo), and when that finds no face or only small
ones, short-range slid over the photo scaled to 384 px and full-range (192², whole photo)
-> one list of candidates (weighted non-max suppression across passes) -> the face mesh (192²,
on a square turned upright by the eyes) twice: from the detector's box, then from the first
mesh's own box, as MediaPipe tracks -> faces the mesh agrees are faces, each with 468 landmarks
-> the iris model (64², on a square around each eye) -> 478 landmarks: the mesh's 468, then 5 for
the person's right iris and 5 for the left (centre first), as MediaPipe's iris tracking gives them.
The settings are those of MediaPipe's graphs (face_detection_*.pbtxt, face_landmark_*.pbtxt,
iris_landmark*.pbtxt in mediapipe/modules, iris_tracking_cpu.pbtxt in mediapipe/graphs).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from .faces import Face, roll_from_eyes
from .geometry import Crop, cut_crop
from .graph_module import GraphModule

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"

@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    """One BlazeFace model and how MediaPipe decodes it (ssd_anchors + tensors_to_detections)."""
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated_scale_aspect_ratio, else 1
    min_score: float


SHORT_RANGE = DetectorSpec("face_detection_short_range.safetensors", 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = DetectorSpec("face_detection_full_range.safetensors", 192, (4,), 1, 0.6)
MESH_FILE, MESH_SIZE = "face_landmark.safetensors", 192
IRIS_FILE, IRIS_SIZE = "iris_landmark.safetensors", 64
IRIS_POINTS = 5
# Each eye's square (iris_landmark_landmarks_to_roi.pbtxt): from two corners along the eye, centred
# between them, EYE_SCALE times their longer extent in x or y; the person's left eye (MediaPipe's
# "right eye", 362 -> 263) mirrored, so that the model sees the same side's eye both times.
EYES = ((33, 133, False), (362, 263, True))
EYE_SCALE = 2.3
ROI_SCALE = 1.5          # mesh input square / face box side (MediaPipe's RectTransformation)
MIN_PRESENCE = 0.5       # the mesh's face flag at least this, or
SURE_DETECTION = 0.66    # the detector's score at least this, makes a face (both measured
                         # on 120 renders: no false face above either, seed 7; the benchmark uses 2026)
SUPPRESSION_IOU = 0.3
SMALL_FACE = 0.4         # of the photo's long side: below it, look for more (and smaller) faces
SLIDING_SIZES = (384,)   # the photo's long side at which the short-range model slides over it
# The mesh runs again on the square its own landmarks give (MediaPipe's tracking step) until the
# roll moves less than ROLL_SETTLED degrees, at most MESH_PASSES times in all: the detector's roll
# can be 20-40 degrees off on a quarter-turned face and each pass only closes part of the gap (the
# astronaut turned a quarter: 67 from the detector, then 79, 87, 87; three-quarters: -53, -61,
# -70, -84, -93; upright: -8, -3.1, -3.3: settled at the second pass, as before)
MESH_PASSES = 5
ROLL_SETTLED = 1.0


def anchors(spec: DetectorSpec, size: int | None = None) -> np.ndarray:
    """(A, 2) anchor centres in input pixels for a size x size input (the model's own size by
    default); fixed-size anchors, layers of one stride share a grid."""
    size = size or spec.size
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride, repeat = spec.strides[layer], 1
        while layer + repeat < len(spec.strides) and spec.strides[layer + repeat] == stride:
            repeat += 1
        cells = math.ceil(size / stride)
        y, x = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(x + 0.5) * stride, (y + 0.5) * stride], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, spec.anchors_per_layer * repeat, axis=1).reshape(-1, 2))
        layer += repeat
    return np.concatenate(centres).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A detector's face in photo pixels: box, the eyes (for the roll) and a score."""
    box: np.ndarray      # (4,) x0, y0, x1, y1
    eyes: np.ndarray     # (2, 2) the person's right eye, then left
    score: float


class FaceDetector:
    def __init__(self, weights: Path = WEIGHTS, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.short_range = GraphModule.load(weights / SHORT_RANGE.file).to(self.device)
        self.full_range = GraphModule.load(weights / FULL_RANGE.file).to(self.device)
        self.mesh = GraphModule.load(weights / MESH_FILE).to(self.device)
        self.iris = GraphModule.load(weights / IRIS_FILE).to(self.device)
        self.anchors: dict = {}

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB float image (H, W, 3) in [0, 1], largest first, each with 478 landmarks.

        Short-range over the whole photo first.  Unless that finds a face at least 40% of the
        photo's long side (a portrait), the short-range model also slides over the photo scaled
        to 384 pixels (it is fully convolutional: a larger input is its 128-px window at every
        position, so faces down to a twelfth of the photo fill enough of it), and the
        full-range model looks at the whole photo.  (Measured on 200 renders, seed 7: with the
        search only when no face reached 15% it found 70% of the faces; with it below 40%, 80%;
        sliding at 256 and 512 as well found no more and more false faces.)"""
        candidates = self._detect(SHORT_RANGE, image)
        faces = self._faces(image, _weighted_suppression(candidates))
        if max((f.box[3] for f in faces), default=0.0) < SMALL_FACE * max(image.shape[:2]):
            for size in SLIDING_SIZES:
                candidates += self._detect(SHORT_RANGE, image, size)
            candidates += self._detect(FULL_RANGE, image)
            # the faces found so far keep their mesh: only candidates elsewhere are meshed
            found = [_corners(face.box) for face in faces]
            elsewhere = [c for c in _weighted_suppression(candidates)
                         if not found or _iou(c.box, np.stack(found)).max() < SUPPRESSION_IOU]
            faces = _distinct(faces + self._faces(image, elsewhere))
        return self._irises(image, faces)

    def _faces(self, image: np.ndarray, candidates: list[Candidate]) -> list[Face]:
        """The face mesh on each candidate; the faces it or the detector is sure of."""
        if not candidates:
            return []
        rois = [Crop.around(c.box[:2] / 2 + c.box[2:] / 2,
                            ROI_SCALE * float(max(c.box[2:] - c.box[:2])),
                            roll_from_eyes(*c.eyes)) for c in candidates]
        faces = self._mesh(image, rois, candidates)
        for _ in range(MESH_PASSES - 1):
            again = self._mesh(image, [mesh_roi(face) for face in faces], candidates)
            settled = all(abs((b.roll - a.roll + 180) % 360 - 180) < ROLL_SETTLED for a, b in zip(faces, again))
            # the new pass unless its square lost the face the last one had
            faces = [b if b.presence >= min(a.presence, MIN_PRESENCE) else a for a, b in zip(faces, again)]
            if settled:
                break
        # The detector and the mesh are two opinions: either sure enough makes a face.
        faces = [f for f in faces if f.presence >= MIN_PRESENCE or f.score >= SURE_DETECTION]
        return _distinct(faces)

    @torch.inference_mode()
    def _detect(self, spec: DetectorSpec, image: np.ndarray, size: int | None = None) -> list[Candidate]:
        """A detector's candidates over the whole photo, letterboxed into size x size (the
        model's own size by default; larger slides its window over the photo)."""
        size = size or spec.size
        if (spec, size) not in self.anchors:
            self.anchors[spec, size] = anchors(spec, size)
        height, width = image.shape[:2]
        window = Crop.around((width / 2, height / 2), float(max(height, width)))
        pixels = cut_crop(image, window, size, border=cv2.BORDER_CONSTANT)
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].to(self.device) * 2 - 1
        model = self.short_range if spec is SHORT_RANGE else self.full_range
        regressors, scores = (o[0].float().cpu().numpy() for o in model(tensor))
        keep = scores[:, 0] >= math.log(spec.min_score / (1 - spec.min_score))
        probability = 1 / (1 + np.exp(-np.clip(scores[keep, 0], -80, 80)))
        # in input pixels: centre offset, box size, 6 keypoint offsets from the anchor
        points = regressors[keep].reshape(-1, 8, 2)
        anchor = self.anchors[spec, size][keep][:, None]
        centre, extent = (points[:, 0] + anchor[:, 0]) / size, points[:, 1] / size
        keypoints = (points[:, 2:] + anchor) / size
        to_photo = window.from_unit()
        return [Candidate(np.concatenate(_apply(to_photo, np.stack([c - e / 2, c + e / 2]))),
                          _apply(to_photo, k[:2]), float(p))
                for c, e, k, p in zip(centre, extent, keypoints, probability)]

    @torch.inference_mode()
    def _mesh(self, image: np.ndarray, rois: list[Crop], candidates: list[Candidate]) -> list[Face]:
        pixels = np.stack([cut_crop(image, roi, MESH_SIZE) for roi in rois])
        tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(self.device)
        mesh, flag = (o.float().cpu().numpy() for o in self.mesh(tensor))
        faces = []
        for roi, candidate, points, logit in zip(rois, candidates, mesh.reshape(len(rois), -1, 3),
                                                 flag.reshape(-1)):
            xy = _apply(roi.from_unit(), points[:, :2] / MESH_SIZE)
            depth = points[:, 2:] * roi.side / MESH_SIZE
            landmarks = np.concatenate([xy, depth], 1).astype(np.float32)
            roll = roll_from_eyes(landmarks[33, :2], landmarks[263, :2])
            presence = float(1 / (1 + math.exp(-np.clip(logit, -80, 80))))
            faces.append(Face(landmarks, roll, candidate.score, presence))
        return faces

    @torch.inference_mode()
    def _irises(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Each face with its irises' 10 landmarks after the mesh's 468 (the iris model on both
        eyes of every face in one batch; MediaPipe's iris_landmark_cpu.pbtxt)."""
        if not faces:
            return []
        rois = [eye_roi(face.landmarks, a, b) for face in faces for a, b, _ in EYES]
        flips = [flip for _ in faces for _, _, flip in EYES]
        crops = [cut_crop(image, roi, IRIS_SIZE) for roi in rois]
        pixels = np.stack([crop[:, ::-1] if flip else crop for crop, flip in zip(crops, flips)])
        tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(self.device)
        _contours, irises = (o.float().cpu().numpy() for o in self.iris(tensor))
        points = []
        for roi, flip, iris in zip(rois, flips, irises.reshape(len(rois), IRIS_POINTS, 3)):
            if flip:  # back from the mirrored crop (x -> 64 - x, as TfLiteTensorsToLandmarks does)
                iris[:, 0] = IRIS_SIZE - iris[:, 0]
            # depth in the eye square's pixels, in the mesh's frame as MediaPipe takes it (the
            # model's eye contour, which MediaPipe writes into the mesh, lies within a pixel of
            # the mesh's depth there on the astronaut)
            points.append(np.c_[_apply(roi.from_unit(), iris[:, :2] / IRIS_SIZE), iris[:, 2] * roi.side / IRIS_SIZE])
        return [dataclasses.replace(face, landmarks=np.concatenate([face.landmarks, *points[2 * i:2 * i + 2]])
                                    .astype(np.float32)) for i, face in enumerate(faces)]


def eye_roi(landmarks: np.ndarray, corner: int, other_corner: int) -> Crop:
    """The iris model's input square for one eye (MediaPipe's iris_landmark_landmarks_to_roi): centred
    between the two corners, turned along the line from the first to the second, its side
    EYE_SCALE times the corners' longer extent in x or y."""
    start, end = landmarks[corner, :2], landmarks[other_corner, :2]
    side = EYE_SCALE * float(np.abs(end - start).max())
    return Crop.around((start + end) / 2, side, roll_from_eyes(start, end))


def mesh_roi(face: Face) -> Crop:
    """The mesh's next input square from its landmarks (MediaPipe's face_landmarks_to_roi): the
    landmarks' box in the face's upright frame, 1.5 times its longer side."""
    angle = math.radians(face.roll)
    upright = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = face.landmarks[:, :2] @ upright.T
    low, high = points.min(0), points.max(0)
    centre = upright.T @ ((low + high) / 2)
    return Crop.around(centre, ROI_SCALE * float(max(high - low)), face.roll)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    def area(b):
        return np.prod(b[..., 2:] - b[..., :2], axis=-1)
    return inter / (area(box) + area(boxes) - inter)


def _weighted_suppression(candidates: list[Candidate]) -> list[Candidate]:
    """MediaPipe's weighted NMS: overlapping detections average into one, weighted by score."""
    remaining = sorted(candidates, key=lambda c: c.score, reverse=True)
    merged = []
    while remaining:
        boxes = np.stack([c.box for c in remaining])
        group = _iou(remaining[0].box, boxes) > SUPPRESSION_IOU
        members = [c for c, g in zip(remaining, group) if g]
        weights = np.array([c.score for c in members])[:, None]
        merged.append(Candidate((np.stack([c.box for c in members]) * weights).sum(0) / weights.sum(),
                                (np.stack([c.eyes for c in members]) * weights[..., None]).sum(0)
                                / weights.sum(), remaining[0].score))
        remaining = [c for c, g in zip(remaining, group) if not g]
    return merged


def _corners(box: tuple[float, float, float, float]) -> np.ndarray:
    """x, y, width, height -> x0, y0, x1, y1."""
    x, y, width, height = box
    return np.array([x, y, x + width, y + height])


def _distinct(faces: list[Face]) -> list[Face]:
    """The faces largest first, without one whose landmark box mostly overlaps a larger one: two
    candidates that the mesh brought onto the same face."""
    kept: list = []
    for face in sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True):
        box = _corners(face.box)
        if not kept or _iou(box, np.stack([k for _, k in kept])).max() < SUPPRESSION_IOU:
            kept.append((face, box))
    return [face for face, _ in kept]
