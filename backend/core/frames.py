"""What the estimator's normals are relative to, and the turn into a photo's camera space.

A face crop cannot show where in the photo the face was (a head turned toward the lens looks
the same anywhere in the frame), so each face's normals are relative to the line of sight to
it: "view space", the camera turned by the shortest rotation that makes it look straight at the
point the face's crop is centred on.  For a face at the photo's centre that is camera space.
Knowing the camera's focal length, each face's normals can be turned into camera space, which
is what projecting them back through the camera needs.

Conventions: OpenGL camera space (+x right, +y up, +z toward the viewer); photo pixels measured
from the top-left corner of the top-left pixel, x right and y down.  numpy only: the add-on
ships this module (with the rest of the client) and the renderer defines its truth with it.
"""
from __future__ import annotations

import numpy as np


def turn_from_z(direction: np.ndarray) -> np.ndarray:
    """(3, 3) R, the shortest rotation taking +z to the unit `direction`; its columns are the
    turned frame's axes, so camera-space vectors @ R are view-space ones and view-space
    vectors @ R.T camera-space ones."""
    direction = np.asarray(direction, np.float64)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, direction)
    sine, cosine = np.linalg.norm(axis), float(z @ direction)
    if sine < 1e-9:          # along z: no turn, or half a turn (about x) for -z
        return np.eye(3) if cosine > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / sine
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sine * cross + (1 - cosine) * cross @ cross


def line_of_sight(point: tuple[float, float], focal: float, principal: tuple[float, float]) -> np.ndarray:
    """Unit direction from what the photo shows at pixel `point` toward the camera, in camera
    space; `focal` and the principal point in pixels."""
    x, y = point
    direction = np.array([-(x - principal[0]) / focal, (y - principal[1]) / focal, 1.0])
    return direction / np.linalg.norm(direction)


def face_turn(centre: tuple[float, float], focal: float, principal: tuple[float, float]) -> np.ndarray:
    """(3, 3) R for the face whose crop was centred on pixel `centre`: view-space normals @ R.T
    are camera-space normals."""
    return turn_from_z(line_of_sight(centre, focal, principal))


FOCAL_RANGE_35MM = (1.0, 5000.0)


def check_focal(focal_35mm) -> float:
    """The focal length as a float, or ValueError with a sentence saying what is wrong."""
    low, high = FOCAL_RANGE_35MM
    if isinstance(focal_35mm, bool) or not isinstance(focal_35mm, (int, float)) or not low <= focal_35mm <= high:
        raise ValueError(f"the focal length must be a number of mm (35 mm equivalent) from {low:g} to {high:g}")
    return float(focal_35mm)


def focal_pixels(focal_35mm: float, width: int, height: int) -> float:
    """A 35 mm-equivalent focal length (EXIF FocalLengthIn35mmFilm: the same angle of view across
    the diagonal as on a 36 x 24 mm frame) in pixels of a width x height photo."""
    return focal_35mm * float(np.hypot(width, height)) / float(np.hypot(36.0, 24.0))


def view_to_camera(normals: np.ndarray, centres: list[tuple[float, float]], focal: float,
                   principal: tuple[float, float]) -> np.ndarray:
    """A photo's normal map (H, W, 3) in view space -> camera space.  `centres`: the pixel each
    face's crop was centred on (the estimator reports them); every pixel is turned with the
    face whose centre is nearest (where faces' crops overlap the map took the stronger mask,
    which is near enough the nearer face).  No centres: returned unchanged."""
    if not centres:
        return normals
    turns = [face_turn(c, focal, principal) for c in centres]
    if len(centres) == 1:
        return (normals @ turns[0].T).astype(normals.dtype)
    height, width = normals.shape[:2]
    ys, xs = np.ogrid[0:height, 0:width]
    nearest = np.zeros((height, width), np.intp)
    best = np.full((height, width), np.inf)
    for i, (x, y) in enumerate(centres):
        distance = (xs + 0.5 - x) ** 2 + (ys + 0.5 - y) ** 2
        closer = distance < best
        nearest[closer], best[closer] = i, distance[closer]
    turned = np.empty_like(normals)
    for i, turn in enumerate(turns):
        picked = nearest == i
        turned[picked] = normals[picked] @ turn.T
    return turned
