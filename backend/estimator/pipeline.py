"""`Estimator`: photos in, full-size normal maps and person masks out (and albedo and light).

read -> detect faces and their landmarks -> per face square crops, framed by its landmarks and
turned upright: the face, head and shoulders, and with a v3 model the upper body (at the sides the
model asks: `crop_sides`) -> the person segmenter on each head-and-shoulders and upper-body crop ->
networks (every crop of every photo in a batch together, crops of one side in one pass) -> turn
each crop's normals (and a v3 model's light) back with its roll (and, with the photo's focal
length, into camera space) -> paste back: the upper-body crops' normals over the person's mask,
the head-and-shoulders crops' over them within their own faded window, the face crops' over both
within the face's soft oval (each part keeps the detail of its closest crop) -> one map, flat
(0, 0, 1) off the people -> encoded as the options ask (convention, number type, mask).  A v3
model's albedo is pasted back as its normals are, with each crop's scale per channel read from the
photo on the skin, and the photo's light is its crops' turned lights combined
(intrinsics.model_light); a normals-only model's are fitted to the photo (intrinsics.fit_light).

`Estimator.estimate` is the one path the CLI, the service and batch runs take: it owns reading,
detection, the networks, finishing and encoding, and drops the work of photos whose requester
gave up between steps.  `Estimator.normal_map` is the same for one float image, unencoded (the
Python API of training and evaluation).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from ..core import frames, sh
from ..core.colour import srgb_to_linear
from ..core.encoding import mask_to_uint8, normals_to_uint16
from ..core.images import ImageSizeError, check_image_size
from ..core.options import EstimateOptions
from . import geometry, intrinsics, layering, models
from .detection import FaceDetector
from .faces import Face
from .image_io import MAX_PIXELS, ImageError, ImageTooLarge, encode_normals, read_image, to_rgb_float
from .networks import FaceNormalNet, mirror_averaged
from .person_check import person_warnings
from .segmentation import PersonSegmenter
from .weights import load_model

logger = logging.getLogger(__name__)

CROPS_PER_PASS = 8          # crops put through the networks at once (the service's --max-batch)
# The crops cut per face, in this order: the face, head and shoulders, and for a v3 model (trained
# on that framing too; the 8th never saw it) the upper body, which covers the person further down
FRAMINGS = (geometry.crop_for_face, geometry.crop_for_person)
V3_FRAMINGS = FRAMINGS + (geometry.crop_for_body,)

Source = bytes | str | os.PathLike | np.ndarray   # an image file's bytes, its path, or pixels


class NoFaceError(ValueError):
    """The photo holds no face the detector can find."""


class PhotoError(Exception):
    """Why one photo of a batch has no result; `code` is one of CODES (the protocol's names)."""
    CODES = ("bad_image", "too_large", "no_face", "cancelled", "internal")

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _never() -> bool:
    return False


def _nothing() -> None:
    pass


@dataclasses.dataclass(frozen=True)
class Photo:
    """One photo to estimate: its pixels' source, what to make of it, and whether whoever asked
    for it has given up (asked between steps; a cancelled photo's crops skip the networks).
    track: given the faces detected in this photo, the faces to cut its crops from (a video's
    tracker smooths their landmarks over frames, backend/batch/tracking.py); photos are prepared
    in order, so a tracker sees a clip's frames in order."""
    source: Source
    options: EstimateOptions = EstimateOptions()
    cancelled: Callable[[], bool] = _never
    track: Callable[[list[Face]], list[Face]] | None = None


@dataclasses.dataclass
class Result:
    """One photo's maps, encoded as its options asked (None: not asked for), or why there are none."""
    normals: np.ndarray | None = None    # (H, W, 3) in options.convention, as options.normals_dtype
    mask: np.ndarray | None = None       # (H, W) uint8, 255 = person
    albedo: np.ndarray | None = None     # (H, W, 3) float16 linear RGB
    height: np.ndarray | None = None     # (H, W) float32, pixels of the photo toward the camera
    light: intrinsics.Light | None = None
    faces: list[Face] = dataclasses.field(default_factory=list)
    centres: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    camera_space: bool = False
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)   # why not to trust the maps
    error: PhotoError | None = None

    MAPS = {"normal": "normals", "mask": "mask", "albedo": "albedo", "height": "height"}

    def maps(self) -> dict[str, np.ndarray]:
        """The pixel maps it holds, by output name, in the order of OUTPUTS."""
        return {name: getattr(self, field) for name, field in self.MAPS.items()
                if getattr(self, field) is not None}

    def summary(self) -> dict:
        """The result as JSON, as the service's replies and `predict --json` give it."""
        if self.error is not None:
            return {"ok": False, "code": self.error.code, "message": str(self.error)}
        summary = {"ok": True, "faces": [list(f.box) for f in self.faces],
                   "face_details": [f.to_json() for f in self.faces],
                   "centres": [list(c) for c in self.centres],
                   "camera_space": self.camera_space, "timings": self.timings, "maps": list(self.maps()),
                   "warnings": self.warnings}
        if self.light is not None:
            summary["light"] = self.light.to_json()
        if self.height is not None:
            summary["height_range"] = {"unit": "pixels of the photo, toward the camera",
                                 "min": round(float(self.height.min()), 3),
                                 "max": round(float(self.height.max()), 3)}
        return summary


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
    timings: dict[str, float]    # seconds per step: detect, segment, network, paste (and read)
    albedo: np.ndarray | None = None        # (H, W, 3) float32 linear RGB, a v3 model's (the photo
                                            # beyond the people); None: to be fitted
    light: intrinsics.Light | None = None   # a v3 model's, in the normals' frame; None: to be fitted

    def albedo_and_light(self, image: np.ndarray, *, albedo: bool = True) -> tuple[np.ndarray | None,
                                                                                 intrinsics.Light]:
        """The model's albedo and light or, for a normals-only model, fitted to the photo `image`
        (the albedo: None unless asked for, fitting it costs a pass over the photo)."""
        if self.light is not None:
            return self.albedo, self.light
        light = intrinsics.fit_light(image, self.normals, intrinsics.skin(self.faces, self.mask))
        return (intrinsics.albedo(image, self.normals, light) if albedo else None), light


@dataclasses.dataclass
class CropMap:
    """The network's maps of one crop, in its upright frame."""
    normals: np.ndarray               # (S, S, 3) unit vectors
    albedo: np.ndarray | None = None  # (S, S, 3) linear RGB, v3 models: known up to one scale per channel
    light: np.ndarray | None = None   # (9, 3) SH coefficients (core/sh.py), v3 models


@dataclasses.dataclass
class CropMaps:
    """The network's maps of N crops of one side, each in its crop's upright frame."""
    normals: np.ndarray               # (N, S, S, 3) unit vectors
    albedo: np.ndarray | None = None  # (N, S, S, 3) linear RGB, v3 models
    light: np.ndarray | None = None   # (N, 9, 3) SH coefficients, v3 models

    def rows(self) -> list[CropMap]:
        return [CropMap(self.normals[i], None if self.albedo is None else self.albedo[i],
                        None if self.light is None else self.light[i]) for i in range(len(self.normals))]


def crop_sides(model: models.IntrinsicNet | FaceNormalNet) -> tuple[int, ...]:
    """The side each framing's crops are cut at for a model, in the order of its framings: v3
    models cut the wider crops at their config's wide_size (fast: half the face crop's side)."""
    if isinstance(model, models.IntrinsicNet):
        return (model.config.input_size,) + (model.config.wide_size,) * (len(V3_FRAMINGS) - 1)
    return (model.config.input_size,) * len(FRAMINGS)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this PyTorch sees no CUDA device")
    return torch.device(name)


@dataclasses.dataclass
class Job:
    """A photo between `prepare` and `finish`: its faces and their network-sized crops (with
    detection: each face's crop, then each face's head-and-shoulders crop, then with a v3 model
    each face's upper-body crop)."""
    image: np.ndarray            # (H, W, 3) the photo, float RGB: albedo and light read its colours
    detect: bool
    faces: list[Face]
    windows: list[geometry.Crop]
    crops: list[np.ndarray]      # per window (S, S, 3) float32, at its framing's side
    timings: dict[str, float]
    focal_35mm: float | None = None
    person_masks: np.ndarray | None = None  # (N, S, S): the segmenter's, per head-and-shoulders
                                            # and upper-body crop (one side; with detection off,
                                            # of the whole image)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    @property
    def face_windows(self) -> list[geometry.Crop]:
        """Per crop, the face crop of its face (with detection off, the crop itself)."""
        if not self.detect:
            return self.windows
        return [self.windows[index % len(self.faces)] for index in range(len(self.windows))]


class Estimator:
    def __init__(self, weights: str | os.PathLike | None = None, *, device: str = "auto",
                 max_pixels: int = MAX_PIXELS, mirror_average: bool = False,
                 crops_per_pass: int = CROPS_PER_PASS, model: str | None = "auto"):
        """max_pixels: larger photos are refused (too_large) before they are decoded.
        mirror_average: also run each crop's mirror image and average the two (twice the
        network time; see networks.mirror_averaged; off since the 8th model, which is trained to
        give a photo and its mirror image the same normals; the 8th model only).  model: a v3
        model by name ("fast", "quality"; estimator/models), its weights `weights` or else from
        backend/weights (WeightsError until v3 weights ship); "shipped": the 8th model (or
        `weights`); "auto" (or None): the size for the device once v3 weights ship, until then
        (and whenever `weights` is given) the 8th model (models.pick)."""
        self.device = pick_device(device)
        size, self.weights = models.resolve(model, self.device, weights)
        self.model_name = size or "shipped"
        self.model = models.load_model(self.weights, self.device) if size else load_model(self.weights, self.device)
        self.size = self.model.config.input_size
        self.framings = V3_FRAMINGS if isinstance(self.model, models.IntrinsicNet) else FRAMINGS
        self.sides = crop_sides(self.model)
        self.detector = FaceDetector(device=self.device)
        self.segmenter = PersonSegmenter(device=self.device)
        self.max_pixels = max_pixels
        self.mirror_average = mirror_average
        self.crops_per_pass = crops_per_pass
        self.dropped_crops = 0      # crops of cancelled photos that never went through the networks

    def estimate(self, photos: Sequence[Photo], *, heartbeat: Callable[[], None] = _nothing) -> Iterator[Result]:
        """Each photo's Result, in order, as each is finished (a failure is a Result with its
        error: one bad photo does not fail the others).  Every photo is read and its crops cut
        first, then all crops go through the networks together, `crops_per_pass` at a time;
        a photo cancelled meanwhile is dropped between steps.  heartbeat() is called after each
        step, so a caller can tell a long batch from a stuck one.  Exceptions outside one photo's
        own steps (the networks failing, memory running out) propagate."""
        jobs: list[Job | PhotoError] = []
        for photo in photos:
            jobs.append(PhotoError("cancelled", "cancelled") if photo.cancelled() else self._prepare(photo))
            heartbeat()
        network = self._network_pass(photos, jobs, heartbeat)
        for photo, job in zip(photos, jobs):
            if isinstance(job, Job) and photo.cancelled():
                job = PhotoError("cancelled", "cancelled")
            if isinstance(job, PhotoError):
                yield Result(error=job)
                continue
            wanted = "albedo" in photo.options.maps or "light" in photo.options.maps
            result = self._encode(self.finish(job, network[id(job)], albedo_and_light=wanted), job.image, photo.options)
            heartbeat()
            yield result

    def normal_map(self, image: np.ndarray, *, detect: bool = True,
                   focal_35mm: float | None = None) -> NormalMap:
        """Unencoded normals for an RGB float image (H, W, 3) in [0, 1] (raises NoFaceError).
        With detect=False the image is taken to be a face crop already.  focal_35mm: the photo's
        focal length, 35 mm equivalent (EXIF FocalLengthIn35mmFilm); given, the normals come out
        in camera space."""
        job = self.prepare(image, detect=detect, focal_35mm=focal_35mm)
        start = time.perf_counter()
        maps = self._predict_each(job.crops)
        job.timings["network"] = time.perf_counter() - start
        return self.finish(job, maps)

    def _prepare(self, photo: Photo) -> Job | PhotoError:
        """Read a photo and cut its crops, or say why not."""
        try:
            start = time.perf_counter()
            image = self._read(photo.source)
            read = time.perf_counter() - start
            job = self.prepare(image, detect=photo.options.detect, focal_35mm=photo.options.focal_35mm,
                               track=photo.track)
            job.timings = {"read": read, **job.timings}
            return job
        except ImageSizeError as error:
            return PhotoError(error.code, str(error))
        except ImageTooLarge as error:
            return PhotoError("too_large", str(error))
        except ImageError as error:
            return PhotoError("bad_image", str(error))
        except NoFaceError as error:
            return PhotoError("no_face", str(error))
        except Exception as error:   # one photo may fail in any way; the batch goes on
            logger.exception("preparing a photo failed")
            return PhotoError("internal", f"{type(error).__name__}: {error}")

    def _read(self, source: Source) -> np.ndarray:
        if isinstance(source, np.ndarray):
            check_image_size(source.shape[1], source.shape[0], self.max_pixels,
                             source.shape[2] if source.ndim == 3 else 1)
            return to_rgb_float(source)
        return read_image(source, max_pixels=self.max_pixels)

    def _network_pass(self, photos: Sequence[Photo], jobs: list[Job | PhotoError],
                      heartbeat: Callable[[], None]) -> dict[int, list[CropMap]]:
        """Every job's crops through the networks, crops_per_pass at a time, skipping the crops
        of photos cancelled meanwhile (counted in dropped_crops)."""
        crops = [(photo, job, index) for photo, job in zip(photos, jobs) if isinstance(job, Job)
                 for index in range(len(job.crops))]
        out: dict[int, list[CropMap]] = {id(job): [] for _, job, _ in crops}
        for start in range(0, len(crops), self.crops_per_pass):
            chunk = crops[start:start + self.crops_per_pass]
            wanted = [(job, index) for photo, job, index in chunk if not photo.cancelled()]
            self.dropped_crops += len(chunk) - len(wanted)
            if not wanted:
                continue
            began = time.perf_counter()
            maps = self._predict_each([job.crops[index] for job, index in wanted])
            seconds = (time.perf_counter() - began) / len(wanted)
            for crop_map, (job, _) in zip(maps, wanted):
                out[id(job)].append(crop_map)
                job.timings["network"] = job.timings.get("network", 0.0) + seconds
            heartbeat()
        return {key: value for key, value in out.items() if value}

    @staticmethod
    def _encode(found: NormalMap, image: np.ndarray, options: EstimateOptions) -> Result:
        """The maps the options ask for, from the finished map and the photo."""
        start = time.perf_counter()
        result = Result(faces=found.faces, centres=found.centres, camera_space=found.camera_space,
                        timings=found.timings, warnings=person_warnings(found.mask))
        maps = options.maps
        if "normal" in maps:
            normals = encode_normals(found.normals, options.convention)
            if options.normals_dtype == "uint16":
                normals = normals_to_uint16(normals)
            elif options.normals_dtype == "float16":   # torch converts several times faster than numpy
                normals = torch.from_numpy(normals).half().numpy()
            result.normals = normals
        if "mask" in maps:
            result.mask = mask_to_uint8(found.mask)
        if "light" in maps or "albedo" in maps:
            albedo, light = found.albedo_and_light(image, albedo="albedo" in maps)
            if "light" in maps:
                result.light = light
            if "albedo" in maps and albedo is not None:
                result.albedo = torch.from_numpy(albedo).half().numpy()
        if "height" in maps:
            result.height = intrinsics.height(found.normals, found.mask)
        found.timings["encode"] = time.perf_counter() - start
        return result

    # The steps of a photo: its crops, then (after the networks) its full-size map.
    def prepare(self, image: np.ndarray, *, detect: bool = True, focal_35mm: float | None = None,
                track: Callable[[list[Face]], list[Face]] | None = None) -> Job:
        """Find the faces (passed through track, when given) and cut their crops (raises NoFaceError)."""
        height, width = image.shape[:2]
        start = time.perf_counter()
        if detect:
            faces = self.detector.detect(image)
            if track is not None:
                faces = track(faces)
            if not faces:
                raise NoFaceError("no face found in the photo (if it is already a cropped face, "
                                  "turn detection off: --no-detect)")
            crops = [framing(face) for framing in self.framings for face in faces]
            sides = [side for side in self.sides for _ in faces]
        else:
            faces = []
            crops, sides = [geometry.crop_whole_image(height, width)], [self.size]
        pixels = [geometry.cut_crop(image, crop, side) for crop, side in zip(crops, sides)]
        timings = {"detect": time.perf_counter() - start}
        start = time.perf_counter()    # all but the face crops (with detection off, the whole image)
        person_masks = self.segmenter.segment_crops(np.stack(pixels[len(faces):]))
        timings["segment"] = time.perf_counter() - start
        return Job(image, detect, faces, crops, pixels, timings, focal_35mm, person_masks)

    def finish(self, job: Job, maps: list[CropMap], *, albedo_and_light: bool = True) -> NormalMap:
        """Paste the crops' maps back into full-size ones: the normals and the person mask, and
        with a v3 model the albedo and the photo's light (unless albedo_and_light=False: not asked for)."""
        start = time.perf_counter()
        turns = self._turns(job)
        crop_normals = [crop.normals @ turn for crop, turn in zip(maps, turns)]
        assert job.person_masks is not None
        weights = layering.crop_weights(job.windows, job.person_masks, len(job.faces), self.size, *job.shape)
        normals, coverage = layering.paste(crop_normals, weights, job.windows, len(job.faces), *job.shape, unit=True)
        mask = coverage if job.detect else self._person_in_whole_image(job)
        albedo, light = None, None
        if albedo_and_light and maps[0].light is not None:
            albedo, light = self._albedo_and_light(job, maps, crop_normals, turns, weights, normals, mask)
        job.timings["paste"] = time.perf_counter() - start
        centres = [crop.centre for crop in job.windows[:max(1, len(job.faces))]]
        return NormalMap(normals, mask, job.faces, centres, job.focal_35mm is not None, job.timings, albedo, light)

    @staticmethod
    def _turns(job: Job) -> list[np.ndarray]:
        """Per crop, the (3, 3) turn from its upright frame into the photo's (crop normals @ turn):
        its roll and, with the focal length, the line of sight to its face's crop (a face's crops
        all turn with its face crop, so they agree)."""
        turns = [geometry.crop_turn(crop) for crop in job.windows]
        if job.focal_35mm is not None:
            height, width = job.shape
            focal, principal = frames.focal_pixels(job.focal_35mm, width, height), (width / 2, height / 2)
            turns = [turn @ frames.face_turn(face.centre, focal, principal).T
                     for turn, face in zip(turns, job.face_windows)]
        return [turn.astype(np.float32) for turn in turns]

    @staticmethod
    def _person_in_whole_image(job: Job) -> np.ndarray:
        """With detection off the normals cover the whole image (it is taken to be a face crop);
        the mask says where the segmenter sees a person, so an image without one is told apart
        (person_check.py)."""
        assert job.person_masks is not None
        height, width = job.shape
        seen = job.person_masks[0]
        person = geometry.paste_back(seen[..., None], seen, job.windows[0], height, width)
        mask = np.zeros((height, width), np.float32)
        mask[person.rows, person.cols] = person.mask
        return mask

    def _albedo_and_light(self, job: Job, maps: list[CropMap], crop_normals: list[np.ndarray],
                          turns: list[np.ndarray], weights: list[np.ndarray], normals: np.ndarray,
                          mask: np.ndarray) -> tuple[np.ndarray | None, intrinsics.Light | None]:
        """A v3 model's albedo and light of the whole photo, or (None, None) when its light is
        unusable (then they are fitted).  The light: every crop's, turned as its normals are, a
        face's crops alike weighted by the face's area (each is an estimate of the same light; a
        larger face is seen in more pixels), then scaled on the skin (intrinsics.model_light).
        The albedo: each crop's scale per channel read from the photo on the skin that crop sees
        (every crop of a face holds the face), so that photo = albedo x shading there and the
        crops agree where they meet; pasted back as the normals are, and the photo itself beyond
        the people (the fit divides the background by the light too, which tints it:
        docs/relighting.md)."""
        skin = intrinsics.skin(job.faces, mask)
        light = intrinsics.model_light(np.stack([crop.light for crop in maps if crop.light is not None]), turns,
                                       [face.side ** 2 for face in job.face_windows], normals[skin])
        if light is None:
            return None, None
        scaled, skin_map = [], skin.astype(np.float32)
        for pixels, crop_map, crop_normal, crop in zip(job.crops, maps, crop_normals, job.windows):
            crop_albedo = crop_map.albedo
            assert crop_albedo is not None
            seen = geometry.cut_crop(skin_map, crop, len(pixels), cv2.BORDER_CONSTANT) > 0.5
            scale = intrinsics.albedo_scale(srgb_to_linear(pixels[seen]), crop_albedo[seen],
                                            sh.shade(crop_normal[seen], light.coefficients))
            scaled.append(crop_albedo * scale)
        albedo, coverage = layering.paste(scaled, weights, job.windows, len(job.faces), *job.shape, unit=False)
        albedo += (srgb_to_linear(job.image) - albedo) * (1 - coverage)[..., None]
        return albedo, light

    def _predict_each(self, crops: list[np.ndarray]) -> list[CropMap]:
        """Each crop's maps, in order: the crops of one side through the networks together."""
        maps: dict[int, CropMap] = {}
        for side in sorted({len(crop) for crop in crops}):
            indices = [i for i, crop in enumerate(crops) if len(crop) == side]
            maps.update(zip(indices, self.predict_crops(np.stack([crops[i] for i in indices])).rows()))
        return [maps[i] for i in range(len(crops))]

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray) -> CropMaps:
        """(N, S, S, 3) float crops in [0, 1] -> their unit normals (and a v3 model's albedo and light)."""
        tensor = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).to(self.device)
        tensor = tensor.float()
        if isinstance(self.model, models.IntrinsicNet):
            out = self.model(tensor)
            return CropMaps(_channels_last(out["normals"]), _channels_last(out["albedo"]),
                            out["light"].float().cpu().numpy())
        normals = mirror_averaged(self.model, tensor) if self.mirror_average else self.model(tensor)
        return CropMaps(_channels_last(normals))


def _channels_last(maps: torch.Tensor) -> np.ndarray:
    return maps.permute(0, 2, 3, 1).float().cpu().numpy()
