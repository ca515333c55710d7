"""Face crops and pasting their normals back: the squares the network sees, and the soft mask.

A crop is an axis-aligned square of the photo scaled to the network's size, so camera-space normals
need no rotation on the way back (the crop only translates and scales the image)."""
from __future__ import annotations

import dataclasses

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


def paste_back(normals: np.ndarray, mask: np.ndarray, crop: Crop, height: int, width: int,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Crop-space normals (S, S, 3) and mask (S, S) -> full-size normals and mask."""
    inverse = cv2.invertAffineTransform(crop.affine_to(normals.shape[0]))
    # Replicating the border keeps the window's outermost half pixel valid; beyond the window the
    # mask is then cut to zero, so nothing outside the crop is claimed.
    full_normals = cv2.warpAffine(normals, inverse, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    full_mask = cv2.warpAffine(mask, inverse, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    ys, xs = np.arange(height) + 0.5, np.arange(width) + 0.5
    inside_rows = (ys >= crop.y0) & (ys <= crop.y0 + crop.side)
    inside_cols = (xs >= crop.x0) & (xs <= crop.x0 + crop.side)
    full_mask[~inside_rows] = 0
    full_mask[:, ~inside_cols] = 0
    return full_normals, full_mask


def composite(pasted: list[tuple[np.ndarray, np.ndarray]], height: int, width: int,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-face (normals, mask) pairs: each pixel takes the face whose mask is strongest there,
    blended toward the flat normal (0, 0, 1) as that mask fades."""
    normals = np.zeros((height, width, 3), np.float32)
    normals[..., 2] = 1.0
    mask = np.zeros((height, width), np.float32)
    for face_normals, face_mask_full in pasted:
        stronger = face_mask_full > mask
        normals[stronger] = face_normals[stronger]
        mask[stronger] = face_mask_full[stronger]
    flat = np.array([0, 0, 1], np.float32)
    blended = normals * mask[..., None] + flat * (1 - mask[..., None])
    blended /= np.linalg.norm(blended, axis=-1, keepdims=True).clip(1e-6)
    return blended, mask
