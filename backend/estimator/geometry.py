"""Face crops and pasting their maps back: the squares the network sees, and the soft mask.

A crop is a square of the photo, turned upright when the face is rolled, scaled to the network's
size.  Its normals (and a v3 model's light) come back through the same turn: a normal's x and y
rotate with the image.  They are relative to the line of sight to the crop's centre; with the
camera's focal length the pipeline turns them into camera space (core/frames.py).  A colour map
(the albedo) is pasted back as it is."""
from __future__ import annotations

import dataclasses
import math
import cv2
import numpy as np

from .faces import Face

# How the network's training renders frame a face (training/synthetic.py: the crop centred on
# the head's FACE_CENTRE, the face 50-90% of the crop's height), measured from the face mesh's
# landmarks on renders (backend/benchmarks/detection.py --calibrate): the crop's centre lies
# CENTRE_DOWN face sizes below the eyes' midpoint (along the face's upright axis) and its side is
# CROP_SIDE face sizes, where the face size is the mean of the eyes' distance and the
# eyes-to-mouth distance, both in 3-D (the mesh's depth included), so that turning the head
# changes neither.
CENTRE_DOWN = 0.275
CROP_SIDE = 3.86
# The head-and-shoulders crop (training/synthetic.py's "person" framing: the face 28-45% of the
# side instead of 50-90%, the crop centred 0.35 face heights below the face): PERSON_ZOOM times
# the face crop's side, its centre PERSON_DOWN of the face crop's side further down the face.
PERSON_ZOOM = 1.9
PERSON_DOWN = 0.245
# The upper-body crop likewise (the face 16-24% of its side, its centre a face height down)
BODY_ZOOM = 3.5
BODY_DOWN = 0.7


@dataclasses.dataclass(frozen=True)
class Crop:
    """A square window of the photo: the top-left (x0, y0) of the upright square and its side, in
    image pixels (may overhang), turned by `angle` degrees counter-clockwise about its centre."""
    x0: float
    y0: float
    side: float
    angle: float = 0.0

    @classmethod
    def around(cls, centre, side: float, angle: float = 0.0) -> Crop:
        return cls(float(centre[0]) - side / 2, float(centre[1]) - side / 2, side, angle)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.side / 2, self.y0 + self.side / 2)

    def _turn(self) -> np.ndarray:
        """Image-space (y down) rotation that takes the window's content upright."""
        a = math.radians(self.angle)
        return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    def affine_to(self, size: int) -> np.ndarray:
        """2x3 matrix mapping photo pixel indices into a size x size crop's (pixel centres align,
        so the crop's edge pixels sample inside the window, not half a pixel beyond it)."""
        linear = size / self.side * self._turn()
        centre = np.array(self.centre) - 0.5
        return np.c_[linear, (size - 1) / 2 - linear @ centre]

    def from_unit(self) -> np.ndarray:
        """2x3 matrix mapping the window's unit square ((0, 0) top-left corner, (1, 1) bottom
        right, as the face models give positions) to photo coordinates (pixel edges)."""
        linear = self.side * self._turn().T
        return np.c_[linear, np.array(self.centre) - linear @ np.array([0.5, 0.5])]

    def corners(self) -> np.ndarray:
        """(4, 2) the window's corners in photo coordinates."""
        return np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) @ self.from_unit()[:, :2].T + self.from_unit()[:, 2]


def face_size(face: Face) -> float:
    """Mean of the 3-D eye distance and eyes-to-mouth distance (mesh pixels)."""
    points = face.landmarks
    right_eye, left_eye = points[[33, 133]].mean(0), points[[362, 263]].mean(0)
    mouth = points[[13, 14, 61, 291]].mean(0)
    eyes = (right_eye + left_eye) / 2
    return float((np.linalg.norm(left_eye - right_eye) + np.linalg.norm(mouth - eyes)) / 2)


def crop_for_face(face: Face) -> Crop:
    """The network's crop of a face, framed as in training, from the eyes, nose and mouth, and
    turned upright by the face's roll."""
    points = face.landmarks[:, :2]
    eyes = (points[[33, 133]].mean(0) + points[[362, 263]].mean(0)) / 2
    size = face_size(face)
    a = math.radians(face.roll)
    down = np.array([math.sin(a), math.cos(a)])   # chin-ward along the face (y grows downward)
    return Crop.around(eyes + CENTRE_DOWN * size * down, CROP_SIDE * size, face.roll)


def crop_for_person(face: Face) -> Crop:
    """The head-and-shoulders crop of a face's person: the face crop widened and moved down."""
    crop = crop_for_face(face)
    a = math.radians(face.roll)
    down = np.array([math.sin(a), math.cos(a)])
    return Crop.around(np.array(crop.centre) + PERSON_DOWN * crop.side * down, PERSON_ZOOM * crop.side,
                       face.roll)


def crop_for_body(face: Face) -> Crop:
    """The upper-body crop of a face's person (the v3 models' third pass; training/synthetic.py's
    "body" framing: the face 16-24% of the side, the centre a face height below the face)."""
    crop = crop_for_face(face)
    a = math.radians(face.roll)
    down = np.array([math.sin(a), math.cos(a)])
    return Crop.around(np.array(crop.centre) + BODY_DOWN * crop.side * down, BODY_ZOOM * crop.side, face.roll)


def crop_whole_image(height: int, width: int) -> Crop:
    """The image is already a face crop: the smallest centred square that holds all of it."""
    side = float(max(height, width))
    return Crop((width - side) / 2, (height - side) / 2, side)


def cut_crop(image: np.ndarray, crop: Crop, size: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """The crop resampled to size x size; parts outside the photo repeat its border (or are
    black with border=cv2.BORDER_CONSTANT).  A window much larger than `size` is cut from a
    halved copy of the photo first, so that the samples average rather than alias."""
    scale = 1.0
    while crop.side / scale > 2 * size and min(image.shape[:2]) > 2:
        image = cv2.pyrDown(image)
        scale *= 2
    if scale > 1:
        crop = Crop(crop.x0 / scale, crop.y0 / scale, crop.side / scale, crop.angle)
    return cv2.warpAffine(image, crop.affine_to(size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=border)


def crop_turn(crop: Crop) -> np.ndarray:
    """(3, 3) T: normals of the upright crop (x right, y up) @ T are the photo's, turned with the
    face's roll (sh.rotate(light, T) turns a light likewise)."""
    a = math.radians(crop.angle)   # counter-clockwise as seen, which is +x toward +y
    return np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]])


def resampled(mask: np.ndarray, source: Crop, target: Crop, size: int | None = None) -> np.ndarray:
    """A mask (S, S) in the pixels of one crop of a photo -> the same in another crop's, cut at
    `size` (default S), 0 where the other crop reaches beyond the first."""
    size = size or mask.shape[-1]
    # target-crop pixel -> photo -> source-crop pixel
    to_photo = np.vstack([cv2.invertAffineTransform(target.affine_to(size)), [0, 0, 1]])
    to_source = source.affine_to(mask.shape[-1]) @ to_photo
    return cv2.warpAffine(mask, to_source, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)


def face_mask(crop_size: int) -> np.ndarray:
    """Soft elliptical face mask in crop coordinates (1 inside the face, fading to 0)."""
    yy, xx = np.mgrid[0:crop_size, 0:crop_size].astype(np.float32)
    centre = (crop_size - 1) / 2
    # Ellipse radii as fractions of the crop: a head is taller than wide.
    r = np.sqrt(((xx - centre) / (0.34 * crop_size)) ** 2 + ((yy - centre * 0.95) / (0.44 * crop_size)) ** 2)
    return np.clip((1.0 - r) / 0.15, 0.0, 1.0)


@dataclasses.dataclass
class Patch:
    """One crop's map (normals, or albedo) and mask, resampled into the photo's pixels over rows x cols."""
    rows: slice
    cols: slice
    values: np.ndarray   # (len(rows), len(cols), channels)
    mask: np.ndarray     # (len(rows), len(cols))


def _renormalise(normals: np.ndarray) -> None:
    normals /= np.sqrt(np.einsum("...i,...i->...", normals, normals))[..., None].clip(1e-6)


def paste_back(values: np.ndarray, mask: np.ndarray, crop: Crop, height: int, width: int) -> Patch:
    """A crop-space map (S, S, channels) and mask (S, S) -> the photo-space patch the crop covers
    (normals already turned into the photo's orientation: crop_turn)."""
    corners = crop.corners()
    x_start, y_start = (max(0, math.floor(v)) for v in corners.min(0))
    x_stop = min(width, math.ceil(corners[:, 0].max()))
    y_stop = min(height, math.ceil(corners[:, 1].max()))
    size = (max(x_stop - x_start, 0), max(y_stop - y_start, 0))
    # patch pixel (i, j) is photo pixel (x_start + i, y_start + j)
    crop_size = values.shape[0]
    to_crop: np.ndarray = crop.affine_to(crop_size) @ np.array(
        [[1, 0, x_start], [0, 1, y_start], [0, 0, 1]], np.float64)
    # Replicating the border keeps the window's outermost half pixel valid; beyond the window the
    # mask is then cut to zero, so nothing outside the crop is claimed.
    flags, border = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE
    patch_values = cv2.warpAffine(values, to_crop, size, flags=flags, borderMode=border).reshape(size[1], size[0], -1)
    patch_mask = cv2.warpAffine(mask, to_crop, size, flags=flags, borderMode=border).reshape(size[1], size[0])
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    inside = np.stack([xs, ys], -1) @ to_crop[:, :2].T + to_crop[:, 2] + 0.5  # crop pixel edges
    patch_mask[((inside < 0) | (inside > crop_size)).any(-1)] = 0
    return Patch(slice(y_start, y_stop), slice(x_start, x_stop), patch_values, patch_mask)


def window_fade(crop: Crop, crop_size: int, border: float, height: int, width: int) -> np.ndarray:
    """1 inside a crop, fading to 0 over the outermost `border` of its side toward each edge of
    the window that lies in the photo (height x width): where the window cuts through a person
    its edge makes no seam, and where the window reaches beyond the photo nothing fades (a
    chest at the photo's bottom edge keeps its maps).  An edge within a quarter of the fade of
    the photo's border counts as beyond it: the sliver it leaves is a smaller flaw than the fade."""
    steps = np.arange(crop_size)
    ramp = np.clip((steps + 0.5) / (border * crop_size), 0, 1).astype(np.float32)
    along = (steps + 0.5) / crop_size      # unit positions along an edge, pixel centres
    to_photo = crop.from_unit()
    margin = border * crop.side / 4

    def in_photo(units: np.ndarray) -> np.ndarray:
        """Whether unit-square points (N, 2) of the window lie in the photo, clear of its border."""
        x, y = (units @ to_photo[:, :2].T + to_photo[:, 2]).T
        return (x > margin) & (x < width - margin) & (y > margin) & (y < height - margin)

    ones, zeros = np.ones(crop_size), np.zeros(crop_size)
    fade = np.ones((crop_size, crop_size), np.float32)
    # per edge: (its points nearest each row or column, the ramp's direction, whether rows vary)
    for edge, ramp_along, by_row in (((zeros, along), ramp[None, :], True),        # left
                                     ((ones, along), ramp[None, ::-1], True),      # right
                                     ((along, zeros), ramp[:, None], False),       # top
                                     ((along, ones), ramp[::-1, None], False)):    # bottom
        inside = in_photo(np.stack(edge, 1))
        reach = inside[:, None] if by_row else inside[None, :]
        fade = np.minimum(fade, np.where(reach, ramp_along, 1))
    return fade


def flat_normals(height: int, width: int) -> np.ndarray:
    normals = np.zeros((height, width, 3), np.float32)
    normals[..., 2] = 1.0
    return normals


def bounds(patches: list[Patch]) -> tuple[slice, slice]:
    """The rows and columns of the box that holds every patch (outside it their masks are 0)."""
    if not patches:
        return slice(0, 0), slice(0, 0)
    return (slice(min(p.rows.start for p in patches), max(p.rows.stop for p in patches)),
            slice(min(p.cols.start for p in patches), max(p.cols.stop for p in patches)))


def layered(base: np.ndarray, top: np.ndarray, weight: np.ndarray, box: tuple[slice, slice], *,
            unit: bool = True) -> None:
    """`top` map laid over `base`, in place, where weight (H, W) is 1, blended where it fades
    (normals, unit=True, renormalised); only inside box, the only place where weight is not 0."""
    w = weight[box][..., None]
    region = base[box]                  # a view: blended in place, no full-size copies
    region += (top[box] - region) * w
    if unit:
        _renormalise(region)


def fade_to_flat(normals: np.ndarray, mask: np.ndarray, box: tuple[slice, slice]) -> None:
    """Normals blended, in place, toward the flat normal (0, 0, 1) as the mask fades to 0."""
    w = mask[box][..., None]
    region = normals[box]
    region *= w
    region[..., 2] += 1 - w[..., 0]
    _renormalise(region)


def strongest(patches: list[Patch], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge patches into the full-size map `values` (H, W, channels; in place, what they do not
    cover is left as it is) and return it with the mask: each pixel takes the patch whose mask is
    strongest there."""
    mask = np.zeros(values.shape[:2], np.float32)
    for patch in patches:
        region_values, region_mask = values[patch.rows, patch.cols], mask[patch.rows, patch.cols]
        stronger = patch.mask > region_mask
        region_values[stronger] = patch.values[stronger]
        region_mask[stronger] = patch.mask[stronger]
    return values, mask


def composite(patches: list[Patch], height: int, width: int, *,
              flat_outside: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Merge the faces' normal patches into full-size (normals, mask): each pixel takes the face
    whose mask is strongest there, blended toward the flat normal (0, 0, 1) as that mask fades (or,
    with flat_outside=False, left as that face's normals, for `layered` to blend)."""
    normals, mask = strongest(patches, flat_normals(height, width))
    box = bounds(patches)
    _renormalise(normals[box])      # interpolating between unit vectors shortened them
    if flat_outside:
        fade_to_flat(normals, mask, box)
    return normals, mask
