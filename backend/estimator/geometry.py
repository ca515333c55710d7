"""Face crops and pasting their normals back: the squares the network sees, and the soft mask.

A crop is an axis-aligned square of the photo scaled to the network's size, so its normals need no
rotation on the way back (the crop only translates and scales the image).  They are relative to
the line of sight to the crop's centre; with the camera's focal length the pipeline turns them into
camera space (core/frames.py)."""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from .detection import FaceBox

CROP_MARGIN = 1.8      # crop side / detector box side: the box is brows-to-mouth, the crop the head
CROP_SHIFT_DOWN = 0.1  # of the box side: detector boxes sit high on the face


@dataclasses.dataclass(frozen=True)
class Crop:
    """A square window of the photo: top-left (x0, y0) and side, in image pixels (may overhang)."""
    x0: float
    y0: float
    side: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.side / 2, self.y0 + self.side / 2)

    def affine_to(self, size: int) -> np.ndarray:
        """2x3 matrix mapping photo pixel indices into a size x size crop's (pixel centres align,
        so the crop's edge pixels sample inside the window, not half a pixel beyond it)."""
        s = size / self.side
        return np.array([[s, 0, (0.5 - self.x0) * s - 0.5],
                         [0, s, (0.5 - self.y0) * s - 0.5]], np.float64)


def crop_for_face(face: FaceBox, margin: float = CROP_MARGIN) -> Crop:
    cx, cy = face.centre
    cy += CROP_SHIFT_DOWN * face.height
    side = max(face.width, face.height) * margin
    return Crop(cx - side / 2, cy - side / 2, side)


def crop_whole_image(height: int, width: int) -> Crop:
    """The image is already a face crop: the smallest centred square that holds all of it."""
    side = float(max(height, width))
    return Crop((width - side) / 2, (height - side) / 2, side)


def cut_crop(image: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """The crop resampled to size x size; parts outside the photo repeat its border."""
    interpolation = cv2.INTER_AREA if crop.side > size else cv2.INTER_LINEAR
    return cv2.warpAffine(image, crop.affine_to(size), (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_REPLICATE)


def face_mask(crop_size: int) -> np.ndarray:
    """Soft elliptical face mask in crop coordinates (1 inside the face, fading to 0)."""
    yy, xx = np.mgrid[0:crop_size, 0:crop_size].astype(np.float32)
    centre = (crop_size - 1) / 2
    # Ellipse radii as fractions of the crop: a head is taller than wide.
    r = np.sqrt(((xx - centre) / (0.34 * crop_size)) ** 2 + ((yy - centre * 0.95) / (0.44 * crop_size)) ** 2)
    return np.clip((1.0 - r) / 0.15, 0.0, 1.0)


@dataclasses.dataclass
class Patch:
    """One face's normals and mask, resampled into the photo's pixels over rows x cols."""
    rows: slice
    cols: slice
    normals: np.ndarray  # (len(rows), len(cols), 3)
    mask: np.ndarray     # (len(rows), len(cols))


def paste_back(normals: np.ndarray, mask: np.ndarray, crop: Crop, height: int, width: int) -> Patch:
    """Crop-space normals (S, S, 3) and mask (S, S) -> the photo-space patch the crop covers."""
    x_start, y_start = max(0, math.floor(crop.x0)), max(0, math.floor(crop.y0))
    x_stop = min(width, math.ceil(crop.x0 + crop.side))
    y_stop = min(height, math.ceil(crop.y0 + crop.side))
    size = (max(x_stop - x_start, 0), max(y_stop - y_start, 0))
    # patch pixel (i, j) is photo pixel (x_start + i, y_start + j)
    to_crop: np.ndarray = crop.affine_to(normals.shape[0]) @ np.array(
        [[1, 0, x_start], [0, 1, y_start], [0, 0, 1]], np.float64)
    # Replicating the border keeps the window's outermost half pixel valid; beyond the window the
    # mask is then cut to zero, so nothing outside the crop is claimed.
    flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE
    patch_normals = cv2.warpAffine(normals, to_crop, size, flags=flags, borderMode=border).reshape(size[1], size[0], 3)
    patch_mask = cv2.warpAffine(mask, to_crop, size, flags=flags, borderMode=border).reshape(size[1], size[0])
    ys, xs = np.arange(y_start, y_stop) + 0.5, np.arange(x_start, x_stop) + 0.5
    patch_mask[(ys < crop.y0) | (ys > crop.y0 + crop.side)] = 0
    patch_mask[:, (xs < crop.x0) | (xs > crop.x0 + crop.side)] = 0
    return Patch(slice(y_start, y_stop), slice(x_start, x_stop), patch_normals, patch_mask)


def composite(patches: list[Patch], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the faces' patches into full-size (normals, mask): each pixel takes the face whose
    mask is strongest there, blended toward the flat normal (0, 0, 1) as that mask fades."""
    normals = np.zeros((height, width, 3), np.float32)
    normals[..., 2] = 1.0
    mask = np.zeros((height, width), np.float32)
    for patch in patches:
        region_normals, region_mask = normals[patch.rows, patch.cols], mask[patch.rows, patch.cols]
        stronger = patch.mask > region_mask
        region_normals[stronger] = patch.normals[stronger]
        region_mask[stronger] = patch.mask[stronger]
    if patches:  # blend once, over the box that holds every patch
        rows = slice(min(p.rows.start for p in patches), max(p.rows.stop for p in patches))
        cols = slice(min(p.cols.start for p in patches), max(p.cols.stop for p in patches))
        weight = mask[rows, cols, None]
        blended = normals[rows, cols]      # a view: blended in place, no full-size copies
        blended *= weight
        blended[..., 2] += 1 - weight[..., 0]
        blended /= np.linalg.norm(blended, axis=-1, keepdims=True).clip(1e-6)
    return normals, mask
