"""`Estimator`: photo in, full-size normal map and face mask out.

read -> detect faces and their landmarks -> per face two square crops, framed by its landmarks
and turned upright: the face, and head and shoulders -> the person segmenter on each head-and-
shoulders crop -> networks (every crop of the photo in one batch) -> turn each crop's normals back
with its roll (and, with the photo's focal length, into camera space) -> paste back: the person
crops' normals over the person's mask, the face crops' normals over them within the face's soft
oval (the face keeps the detail of its closer crop) -> one map, flat (0, 0, 1) off the people.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core import frames
from . import geometry
from .detection import Face, FaceDetector
from .image_io import MAX_PIXELS, read_image
from .networks import mirror_averaged
from .segmentation import PersonSegmenter
from .weights import DEFAULT_WEIGHTS, load_model

# Where a head-and-shoulders crop cuts through the person (most often across the chest), its
# normals and mask fade out over this fraction of the crop's side, so the cut reads as a soft
# transition into the flat body rather than a line
PERSON_EDGE_FADE = 0.12


class NoFaceError(ValueError):
    """The photo holds no face the detector can find."""


@dataclasses.dataclass
class NormalMap:
    normals: np.ndarray          # (H, W, 3) float32 unit vectors, OpenGL convention: camera space
                                 # when the focal length was given, else each face's relative to
                                 # the line of sight to its centre (core/frames.py)
    mask: np.ndarray             # (H, W) float32 in [0, 1]: how much of each pixel is a person
                                 # whose face was found (with detection off: any person, as the
                                 # person segmenter sees the whole image)
    faces: list[Face]            # the faces found, largest first (empty when detection was skipped)
    centres: list[tuple[float, float]]  # per face, the pixel its crop was centred on
    camera_space: bool           # whether the normals were turned into camera space
    timings: dict[str, float]    # seconds per step: read, detect, network, paste


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this PyTorch sees no CUDA device")
    return torch.device(name)


@dataclasses.dataclass
class Job:
    """A photo between `prepare` and `finish`: its faces and their network-sized crops (with
    detection: each face's crop, then each face's head-and-shoulders crop)."""
    shape: tuple[int, int]
    detect: bool
    faces: list[Face]
    windows: list[geometry.Crop]
    crops: np.ndarray            # (N, S, S, 3) float32
    timings: dict[str, float]
    focal_35mm: float | None = None
    person_masks: np.ndarray | None = None  # (faces or 1, S, S): the segmenter's, per person crop
                                            # (with detection off, of the whole image)


class Estimator:
    def __init__(self, weights: str | os.PathLike | None = None, *, device: str = "auto",
                 max_pixels: int = MAX_PIXELS, mirror_average: bool = False):
        """mirror_average: also run each crop's mirror image and average the two (twice the
        network time; see networks.mirror_averaged; off since the 8th model, which is trained to
        give a photo and its mirror image the same normals)."""
        self.device = pick_device(device)
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        self.model = load_model(self.weights, self.device)
        self.size = self.model.config.input_size
        self.detector = FaceDetector(device=self.device)
        self.segmenter = PersonSegmenter(device=self.device)
        self.max_pixels = max_pixels
        self.mirror_average = mirror_average

    def estimate_file(self, path: str | os.PathLike | bytes, *, detect: bool = True,
                      focal_35mm: float | None = None) -> NormalMap:
        start = time.perf_counter()
        image = read_image(path, max_pixels=self.max_pixels)
        read_seconds = time.perf_counter() - start
        result = self.estimate(image, detect=detect, focal_35mm=focal_35mm)
        result.timings = {"read": read_seconds, **result.timings}
        return result

    def estimate(self, image: np.ndarray, *, detect: bool = True,
                 focal_35mm: float | None = None) -> NormalMap:
        """Normals for an RGB float image (H, W, 3) in [0, 1].  With detect=False the image is
        taken to be a face crop already.  focal_35mm: the photo's focal length, 35 mm equivalent
        (EXIF FocalLengthIn35mmFilm); given, the normals come out in camera space."""
        job = self.prepare(image, detect=detect, focal_35mm=focal_35mm)
        start = time.perf_counter()
        normals = self.predict_crops(job.crops)
        job.timings["network"] = time.perf_counter() - start
        return self.finish(job, normals)

    # The three steps of `estimate`, apart, so that a server can run the crops of several
    # requests through the network together.
    def prepare(self, image: np.ndarray, *, detect: bool = True,
                focal_35mm: float | None = None) -> Job:
        """Find the faces and cut their crops (raises NoFaceError)."""
        height, width = image.shape[:2]
        start = time.perf_counter()
        if detect:
            faces = self.detector.detect(image)
            if not faces:
                raise NoFaceError("no face found in the photo (if it is already a cropped face, "
                                  "turn detection off: --no-detect)")
            crops = ([geometry.crop_for_face(face) for face in faces]
                     + [geometry.crop_for_person(face) for face in faces])
        else:
            faces = []
            crops = [geometry.crop_whole_image(height, width)]
        pixels = np.stack([geometry.cut_crop(image, crop, self.size) for crop in crops])
        timings = {"detect": time.perf_counter() - start}
        start = time.perf_counter()    # the person crops (with detection off, the whole image)
        person_masks = self.segmenter.segment_crops(pixels[len(faces):])
        timings["segment"] = time.perf_counter() - start
        return Job((height, width), detect, faces, crops, pixels, timings, focal_35mm, person_masks)

    def finish(self, job: Job, crop_normals: np.ndarray) -> NormalMap:
        """Paste the crops' normals back into a full-size map with the face mask."""
        start = time.perf_counter()
        height, width = job.shape
        count = len(job.faces)
        centres = [crop.centre for crop in job.windows]
        crop_normals = np.stack([geometry.turn_normals(n, crop) for n, crop in zip(crop_normals, job.windows)])
        if job.focal_35mm is not None:
            focal = frames.focal_pixels(job.focal_35mm, width, height)
            principal = (width / 2, height / 2)
            # a face's person crop turns with its face crop, so the two passes agree
            turn_centres = centres[:count] * 2 if job.detect else centres
            crop_normals = np.stack([n @ frames.face_turn(c, focal, principal).T.astype(np.float32)
                                     for n, c in zip(crop_normals, turn_centres)])
        assert job.person_masks is not None
        if not job.detect:
            # the normals cover the whole image (it is taken to be a face crop); the mask says where
            # the segmenter sees a person, so an image without one is told apart (person_check.py)
            whole = np.ones((self.size, self.size), np.float32)
            normals, _ = geometry.composite([geometry.paste_back(crop_normals[0], whole, job.windows[0],
                                                                 height, width)], height, width)
            person = geometry.paste_back(crop_normals[0], job.person_masks[0], job.windows[0], height, width)
            mask = np.zeros((height, width), np.float32)
            mask[person.rows, person.cols] = person.mask
        else:
            face_oval = geometry.face_mask(self.size)
            edges = geometry.window_fade(self.size, PERSON_EDGE_FADE)
            people = [geometry.paste_back(n, m * edges, crop, height, width) for n, m, crop in
                      zip(crop_normals[count:], job.person_masks, job.windows[count:])]
            faces = [geometry.paste_back(n, face_oval * m, crop, height, width) for n, m, crop in
                     zip(crop_normals[:count], self._person_in_face_crops(job), job.windows[:count])]
            normals, mask = geometry.composite(people, height, width, flat_outside=False)
            face_normals, face_weight = geometry.composite(faces, height, width, flat_outside=False)
            geometry.layered(normals, face_normals, face_weight, geometry.bounds(faces))
            geometry.fade_to_flat(normals, mask, geometry.bounds(people))
        job.timings["paste"] = time.perf_counter() - start
        return NormalMap(normals, mask, job.faces, centres[:max(1, count)],
                         job.focal_35mm is not None, job.timings)

    @staticmethod
    def _person_in_face_crops(job: Job) -> list[np.ndarray]:
        """Each person crop's mask resampled into the same face's crop: the face pass is kept only
        on the person (its oval also covers background beside the head)."""
        count = len(job.faces)
        assert job.person_masks is not None
        size = job.person_masks.shape[-1]
        masks = []
        for face_crop, person_crop, mask in zip(job.windows[:count], job.windows[count:], job.person_masks):
            # face-crop pixel -> photo -> person-crop pixel
            to_photo = np.vstack([cv2.invertAffineTransform(face_crop.affine_to(size)), [0, 0, 1]])
            to_person = person_crop.affine_to(size) @ to_photo
            masks.append(cv2.warpAffine(mask, to_person, (size, size),
                                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_CONSTANT))
        return masks

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) float crops in [0, 1] -> (N, S, S, 3) unit normals."""
        tensor = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).to(self.device)
        tensor = tensor.float()
        normals = mirror_averaged(self.model, tensor) if self.mirror_average else self.model(tensor)
        return normals.permute(0, 2, 3, 1).float().cpu().numpy()
