"""Ground-truth-free consistency on real portraits: `python -m backend evaluate --portraits DIR`.

Real photos have no true normals, but a good estimator gives the same map for the same face
however the photo is changed in ways that do not change the face.  For each held-out portrait
(backend/training/portraits/evaluation.txt) and each model, the photo's own map is compared with
the maps of four changed copies, each taken back into the photo's pixels:

- mirror: the photo flipped left-right; its map flipped back and its x negated;
- jpeg40: the photo saved as a JPEG of quality 40 (Pillow, 4:2:0) and read back;
- half: the photo at half size (INTER_AREA); its map resized back to full size (bilinear) and
  renormalised, its mask likewise;
- shift12: the photo shifted up and left by 12% of each side (rows and columns, rounded), the part
  that leaves the frame cropped away, so the copy is 88% as wide and tall and nothing is made up;
  its map is put back where it came from and compared on the overlap (all but the top 12% and the
  left 12% of the photo).

The score of a copy is the mean angle in degrees between the two maps over the pixels where the
photo's own mask is over 0.5 and the copy covers the photo (everywhere but shift12's cropped
strips).  A copy whose map covers less there is not forgiven: the photo's map is flat (0, 0, 1)
outside its mask, and a map that moves with the photo is an inconsistency.  Per model and copy:
the mean over photos of those per-photo means, their median, and the 5 worst photos.  A photo in
which no face is found is left out of every row of that model and listed; a copy in which none is
found is left out of that row and listed with it.  Each row also says how many photos it pooled.
"""
from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from ..estimator.image_io import ImageError, read_image
from ..estimator.pipeline import NoFaceError
from .evaluate import angular_errors
from .pictures import save_rgb, stack_rows, tiles_row

JPEG_QUALITY = 40
SHIFT = 0.12
WORST = 5
SHEET_PHOTOS = 24


class MapLike(Protocol):
    normals: np.ndarray
    mask: np.ndarray


class EstimatorLike(Protocol):
    def normal_map(self, image: np.ndarray) -> MapLike: ...


# A copy: image -> (changed image, back) where back(normals, mask) gives the copy's map and mask
# in the photo's pixels and the bool (H, W) of the pixels the copy covers.
Back = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _mirror(image: np.ndarray) -> tuple[np.ndarray, Back]:
    height, width = image.shape[:2]

    def back(normals, mask):
        normals = normals[:, ::-1] * np.array([-1, 1, 1], np.float32)
        return normals, mask[:, ::-1], np.ones((height, width), bool)
    return np.ascontiguousarray(image[:, ::-1]), back


def jpeg_copy(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return read_image(buffer.getvalue())


def _jpeg(image: np.ndarray) -> tuple[np.ndarray, Back]:
    height, width = image.shape[:2]
    return jpeg_copy(image), lambda normals, mask: (normals, mask, np.ones((height, width), bool))


def _half(image: np.ndarray) -> tuple[np.ndarray, Back]:
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, round(width / 2)), max(1, round(height / 2))), interpolation=cv2.INTER_AREA)

    def back(normals, mask):
        normals = cv2.resize(normals, (width, height), interpolation=cv2.INTER_LINEAR)
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-8)
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return normals, mask, np.ones((height, width), bool)
    return small, back


def shift_offsets(height: int, width: int, shift: float = SHIFT) -> tuple[int, int]:
    """(rows, columns) cropped off the top and the left by the shift12 copy."""
    return round(shift * height), round(shift * width)


def _shift(image: np.ndarray) -> tuple[np.ndarray, Back]:
    height, width = image.shape[:2]
    dy, dx = shift_offsets(height, width)

    def back(normals, mask):
        full = np.zeros((height, width, 3), np.float32)
        full[..., 2] = 1
        full[dy:, dx:] = normals
        full_mask = np.zeros((height, width), np.float32)
        full_mask[dy:, dx:] = mask
        covered = np.zeros((height, width), bool)
        covered[dy:, dx:] = True
        return full, full_mask, covered
    return np.ascontiguousarray(image[dy:, dx:]), back


TRANSFORMS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, Back]]] = {
    "mirror": _mirror, "jpeg40": _jpeg, "half": _half, "shift12": _shift}


def _estimate(estimator: EstimatorLike, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        found = estimator.normal_map(image)
    except NoFaceError:
        return None
    return np.asarray(found.normals, np.float32), np.asarray(found.mask, np.float32)


def photo_consistency(estimator: EstimatorLike, image: np.ndarray
                      ) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, float | None]]:
    """The photo's own (normals, mask) (None: no face) and per copy the mean angle in degrees
    (None: no face in the copy; NaN: no pixel to compare)."""
    own = _estimate(estimator, image)
    if own is None:
        return None, {}
    normals, mask = own
    scores: dict[str, float | None] = {}
    for name, transform in TRANSFORMS.items():
        copy, back = transform(image)
        found = _estimate(estimator, copy)
        if found is None:
            scores[name] = None
            continue
        copy_normals, _, covered = back(*found)
        region = (mask > 0.5) & covered
        scores[name] = float(angular_errors(copy_normals, normals, region).mean()) if region.any() else np.nan
    return own, scores


@dataclasses.dataclass
class PortraitReport:
    rows: list[dict]                   # one per model and copy
    photos: int                        # held-out photos tried
    models: dict[str, dict]            # per model: weights, no_face (names), seconds
    per_photo: dict[str, dict[str, dict[str, float | None]]]   # model -> photo -> copy -> degrees
    sheet: str | None = None
    unreadable: list[str] = dataclasses.field(default_factory=list)   # photos that could not be read

    def to_json(self) -> dict:
        """Plain JSON (NaN, a copy with nothing to compare, becomes null; the rows list those)."""
        found = dataclasses.asdict(self)
        found["per_photo"] = {model: {photo: {copy: None if degrees is None or not np.isfinite(degrees) else degrees
                                              for copy, degrees in scores.items()}
                                      for photo, scores in photos.items()}
                              for model, photos in self.per_photo.items()}
        return found


def summarize_copy(model: str, transform: str, scores: dict[str, float | None], no_face: list[str]) -> dict:
    """A row: the copy's scores over the photos that had a face (`scores`: photo -> degrees)."""
    done = {photo: degrees for photo, degrees in scores.items() if degrees is not None and np.isfinite(degrees)}
    values = np.array(list(done.values()), np.float64)
    worst = sorted(done.items(), key=lambda item: -item[1])[:WORST]
    return {"model": model, "transform": transform, "photos": len(done),
            "mean": float(values.mean()) if len(values) else None,
            "median": float(np.median(values)) if len(values) else None,
            "worst": [{"photo": photo, "degrees": degrees} for photo, degrees in worst],
            "no_face": [photo for photo, degrees in scores.items() if degrees is None],
            "no_overlap": [photo for photo, degrees in scores.items()
                           if degrees is not None and not np.isfinite(degrees)],
            "photo_no_face": len(no_face)}


def consistency(estimators: Mapping[str, EstimatorLike], photos: Iterable[Path], *,
                weights: dict[str, str] | None = None, sheet: Path | None = None,
                sheet_photos: int = SHEET_PHOTOS, progress: bool = False) -> PortraitReport:
    """Every photo through every model (the same run, photo by photo) and its four copies.  With
    `sheet`, the first model's maps of the first `sheet_photos` photos go into a contact sheet."""
    from tqdm import tqdm

    photos = list(photos)
    per_photo: dict[str, dict[str, dict[str, float | None]]] = {name: {} for name in estimators}
    no_face: dict[str, list[str]] = {name: [] for name in estimators}
    seconds = dict.fromkeys(estimators, 0.0)
    sheet_rows = []
    first = next(iter(estimators))
    unreadable = []
    for index, path in enumerate(tqdm(photos, unit="photo", disable=not progress)):
        try:
            image = read_image(path)
        except ImageError as error:
            unreadable.append(f"{path.name}: {error}")
            continue
        for name, estimator in estimators.items():
            start = time.perf_counter()
            own, scores = photo_consistency(estimator, image)
            seconds[name] += time.perf_counter() - start
            if own is None:
                no_face[name].append(path.name)
            else:
                per_photo[name][path.name] = scores
            if sheet is not None and name == first and index < sheet_photos:
                normals, mask = own if own is not None else (_flat(image), np.zeros(image.shape[:2], np.float32))
                sheet_rows.append(tiles_row(image, normals, mask))
    rows = []
    for name in estimators:
        for transform in TRANSFORMS:
            scores = {photo: found[transform] for photo, found in per_photo[name].items()}
            rows.append(summarize_copy(name, transform, scores, no_face[name]))
    if sheet is not None and sheet_rows:
        save_rgb(sheet, stack_rows(sheet_rows))
    models = {name: {"weights": (weights or {}).get(name), "no_face": no_face[name],
                     "seconds": round(seconds[name], 2)} for name in estimators}
    return PortraitReport(rows, len(photos), models, per_photo,
                          str(sheet) if sheet is not None and sheet_rows else None, unreadable)


def _flat(image: np.ndarray) -> np.ndarray:
    normals = np.zeros(image.shape, np.float32)
    normals[..., 2] = 1
    return normals


def evaluate_portraits(folder: Path, weights: Path, previous: Path | None = None, *,
                       v3: Sequence[str] = (), sheet: Path | None = None, threads: int = 2,
                       device: str = "cpu", progress: bool = False) -> PortraitReport:
    """The consistency rows on the held-out portraits in `folder` for the model `weights` (and the
    `previous` one and the v3 models `v3`, measured in the same run), and the contact sheet of the
    first model.  Rows are labelled "shipped" (or "model" when `weights` is another file),
    "previous", and per v3 model its size ("fast", "quality": the shipped v3 weights) or its
    weights file's name (a training run's file: the network is the file's, whichever size)."""
    import torch

    from ..estimator import models
    from ..estimator.pipeline import Estimator
    from ..estimator.weights import DEFAULT_WEIGHTS
    from .portraits import portrait_split

    torch.set_num_threads(threads)
    _, held_out = portrait_split(folder)
    label = "shipped" if Path(weights).resolve() == DEFAULT_WEIGHTS.resolve() else "model"
    estimators = {label: Estimator(weights, device=device)}
    if previous is not None:
        estimators["previous"] = Estimator(previous, device=device)
    for name in v3:
        # a file: "fast" only picks the v3 loader (models.resolve); the network is the file's
        estimator = Estimator(model=name, device=device) if name in models.SIZES else \
            Estimator(name, model="fast", device=device)
        estimators[name if name in models.SIZES else Path(name).stem] = estimator
    named = {name: str(estimator.weights) for name, estimator in estimators.items()}
    return consistency(estimators, held_out, weights=named, sheet=sheet, progress=progress)


def format_portrait_table(report: PortraitReport) -> str:
    lines = [f"{report.photos} held-out real portraits: consistency in degrees (each copy's map, taken back "
             f"into the photo, against the photo's own, over its mask)",
             f"{'model':<12}{'copy':<9}{'photos':>7}{'mean':>7}{'median':>8}{'no face':>8}   worst {WORST}"]
    for row in report.rows:
        mean = f"{row['mean']:>7.2f}" if row["mean"] is not None else f"{'-':>7}"
        median = f"{row['median']:>8.2f}" if row["median"] is not None else f"{'-':>8}"
        worst = ", ".join(f"{w['photo']} {w['degrees']:.1f}" for w in row["worst"])
        lines.append(f"{row['model']:<12}{row['transform']:<9}{row['photos']:>7}{mean}{median}"
                     f"{len(row['no_face']):>8}   {worst}")
    for name, found in report.models.items():
        missed = found["no_face"]
        weights = f" ({found['weights']})" if found["weights"] else ""
        lines.append(f"{name}{weights}: no face found in {len(missed)} of {report.photos} photos"
                     f"{': ' + ', '.join(missed) if missed else ''}; {found['seconds']:.1f} s")
    for row in report.rows:
        if row["no_face"]:
            lines.append(f"{row['model']} {row['transform']}: no face in the copy of {', '.join(row['no_face'])}")
        if row["no_overlap"]:
            lines.append(f"{row['model']} {row['transform']}: nothing to compare in {', '.join(row['no_overlap'])}")
    for problem in report.unreadable:
        lines.append(f"unreadable: {problem}")
    return "\n".join(lines)
