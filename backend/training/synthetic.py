"""Synthetic training pairs from the ICT-FaceKit head: photo-like image, exact view-space
normals (OpenGL: +x right, +y up, +z toward the camera) and a face mask.

View space is the camera turned to look at the face centre.  Each render is a window of a larger
photo in which the face sits up to 12 degrees off the optical axis; the window alone cannot show
how far off (it looks like a face seen head-on by a camera pointed at it), so normals relative to
the photo's optical axis would carry a rotation no face crop can recover: 8 degrees on average
over the test people, measured.  For a face on the axis the two spaces are the same.

The mesh is smooth and untextured, so everything a photo has beyond its shape is made up here:
mesoscale skin relief (pores, wrinkles, creases) as a height field in the face's UV space that bends
BOTH the shading normals and the ground-truth normals; procedural albedo; lighting; hair,
backgrounds, occluders; and a camera (white balance, tone curve, blur, noise, JPEG).
Each sample is a pure function of its seed (the light and camera of its light seed).

The diffuse lighting is second-order spherical harmonics (core/sh.py): a coloured SH environment
plus a few key lights, each projected onto SH exactly, so the whole diffuse light is one set of 9
RGB coefficients, saved with every render as its truth (turned into the normals' view space, in
the units of the photo's linear values: white balance and exposure folded in) beside the albedo
(linear RGB).  Where nothing else acts, linear photo = albedo * sh.shade(normals, light).  What
SH cannot hold stays as the residual a photometric loss must tolerate: the key lights' cast
shadows (screen space), their specular highlights, the subsurface-like softening of skin's
shading, the mouth's darkness, and the camera's tone curve (gamma 1.8-2.6, not sRGB's), blur,
noise and JPEG; an 8% share of photos are grey.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from shaders.relight import linear_to_srgb

from ..core import frames, sh
from . import body
from .facekit import FaceKit, Person, held_out_person, training_person
from .rasterize import rasterize

UV_SIZE = 512          # the face tile's relief is drawn at this resolution, its colour at half
FACE_HEIGHT_CM = 18.0  # chin to hairline of the mean head: sets how much of the crop a face fills
FACE_CENTRE = np.array([0.0, 1.5, 9.0], np.float32)  # of the neutral head, cm
RENDER_VERSION = 7     # bump when renders change: the training cache (dataset.py) keys on it
                       # (7: SH diffuse lighting, albedo and light saved, the body framing)

# The head model's 68 landmarks (iBUG numbering, facekit.landmark_vertices), by what they mark
JAW_RIGHT, CHIN, JAW_LEFT, LOWER_LIP = 4, 8, 12, 57      # right/left: the subject's
BROWS = slice(17, 27)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
EYES = slice(36, 48)
INNER_EYE_CORNERS = [39, 42]


@dataclasses.dataclass
class Sample:
    image: np.ndarray     # (S, S, 3) float32 sRGB in [0, 1]
    normals: np.ndarray   # (S, S, 3) float32 unit vectors, view space (see the module's docstring)
    mask: np.ndarray      # (S, S) float32, 1 on the visible face (skin above the chin, eyes)
    valid: np.ndarray     # (S, S) float32, 1 wherever the normals are exact: the whole person but
                          # the mouth's inside and loose strands or objects drawn over it
    subject: np.ndarray   # (S, S) float32, 1 on the person (head, hair, clothes, glasses, hands)
    albedo: np.ndarray    # (S, S, 3) float32 linear RGB, the person's colour without light (0 off it)
    light: np.ndarray     # (9, 3) float32 SH coefficients of the diffuse light (core/sh.py), view
                          # space, in the photo's linear units (see the module's docstring)
    depth: np.ndarray | None = None   # (S, S) float32 distance from the camera along its axis on
                          # the person, in pixels at the face's distance (0 off it): what a height
                          # integrated from the normals is compared with


@dataclasses.dataclass(frozen=True)
class View:
    """Where the head is and how the photo frames it."""
    head: np.ndarray        # (3, 3) the head's rotation in camera space
    distance: float         # cm from the camera to the face centre
    fill: float             # face height / crop side
    off_axis: np.ndarray    # (2,) radians right and up from the optical axis to the face centre
    shift: np.ndarray       # (2,) pixels the face sits off the crop's centre

    def face_centre(self) -> np.ndarray:
        """The face centre in camera space (cm)."""
        return np.array([*np.tan(self.off_axis) * self.distance, -self.distance], np.float32)

    def to_view_space(self) -> np.ndarray:
        """(3, 3) R with camera-space normals @ R = view-space normals (core/frames.py: the
        shortest turn that takes +z to the direction from the face to the camera)."""
        return frames.turn_from_z(unit(-self.face_centre())).astype(np.float32)


# The framings the pipeline cuts (estimator/geometry.py): a face crop, the face 50-90% of its
# side, a head-and-shoulders crop, the face 28-45% of it, centred PERSON_DOWN face heights
# below the face centre, and an upper-body crop, the face 16-24% of it, BODY_DOWN face heights down.
PERSON_FILL = (0.28, 0.45)
PERSON_DOWN = 0.35
BODY_FILL = (0.16, 0.24)
BODY_DOWN = 1.0
FRAMINGS = ("face", "person", "body")


def sample_view(rng: np.random.Generator, size: int, framing: str = "face") -> View:
    """Head pose (yaw up to 60 degrees, pitch 30, roll 15) and a portrait camera: selfie to
    telephoto distance, the face filling 50-90% of the crop ("face"), 28-45% of a crop reaching
    down to the shoulders ("person") or 16-24% of one reaching down the chest ("body"), anywhere
    in the photo."""
    yaw = rng.normal(0, 20) if rng.random() < 0.7 else rng.uniform(-60, 60)
    pitch, roll = rng.normal(0, 10), rng.normal(0, 6)
    head = rotation(float(np.clip(yaw, -60, 60)), float(np.clip(pitch, -30, 30)),
                    float(np.clip(roll, -15, 15)))
    distance = math.exp(rng.uniform(math.log(45), math.log(250)))
    fill = float(rng.uniform(*{"face": (0.5, 0.9), "person": PERSON_FILL, "body": BODY_FILL}[framing]))
    off_axis = np.radians(rng.uniform(-12, 12, 2))
    shift = rng.uniform(-1, 1, 2) * (1 - fill) * size * (0.35 if framing == "face" else 0.1)
    if framing != "face":
        shift[1] -= (PERSON_DOWN if framing == "person" else BODY_DOWN) * fill * size
    return View(head, distance, fill, off_axis, shift)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation in degrees: yaw about +y, then pitch about +x, then roll about +z."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return (rz @ rx @ ry).astype(np.float32)


def unit(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Vectors over the last axis scaled to length 1 (3x faster than np.linalg.norm on images)."""
    length = np.sqrt(np.einsum("...c,...c->...", vectors, vectors))[..., None]
    return vectors / np.maximum(length, eps)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    face = np.cross(b - a, c - a)  # length = twice the area: area-weighted sum
    normals = np.stack([np.bincount(triangles.ravel(), np.repeat(face[:, k], 3), len(vertices))
                        for k in range(3)], axis=1)
    return unit(normals).astype(np.float32)


class NoiseBank:
    """Band-limited noise tiles at several scales, reused by random crops: cheaper than drawing
    fresh noise for every texture of every sample."""

    def __init__(self, size: int = UV_SIZE, scales=(0.7, 1.5, 3, 6, 12, 24, 48), seed: int = 1234):
        rng = np.random.default_rng(seed)
        self.size = size
        self.tiles = {}
        for sigma in scales:
            tile = cv2.GaussianBlur(rng.standard_normal((2 * size, 2 * size)).astype(np.float32),
                                    (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
            self.tiles[sigma] = tile / tile.std()
        # hair-like: fine across, long along (strands run down the tile)
        tile = cv2.GaussianBlur(rng.standard_normal((2 * size, 2 * size)).astype(np.float32),
                                (0, 0), sigmaX=0.7, sigmaY=10, borderType=cv2.BORDER_REFLECT)
        self.tiles["strands"] = tile / tile.std()
        tile = cv2.GaussianBlur(rng.standard_normal((2 * size, 2 * size)).astype(np.float32),
                                (0, 0), sigmaX=4, sigmaY=40, borderType=cv2.BORDER_REFLECT)
        self.tiles["clumps"] = tile / tile.std()   # locks of hair

    def sample(self, rng: np.random.Generator, sigma: float, shape: tuple[int, int]) -> np.ndarray:
        tile = self.tiles[sigma]
        y, x = rng.integers(0, tile.shape[0] - shape[0]), rng.integers(0, tile.shape[1] - shape[1])
        patch = tile[y:y + shape[0], x:x + shape[1]]
        return patch


def _uv_points(uv: np.ndarray, size: int = UV_SIZE) -> np.ndarray:
    """Face-tile UVs (v up) -> texture pixel coordinates (row 0 at the top), as cv2 wants them."""
    return np.stack([uv[..., 0] * size, (1 - uv[..., 1]) * size], -1)


def _draw_curve(canvas: np.ndarray, points: np.ndarray, value: float, thickness: int) -> None:
    pts = np.round(_uv_points(points, canvas.shape[0]) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, value, thickness, cv2.LINE_AA, shift=4)  # type: ignore[call-overload]


def angles_from_gaze(shell: np.ndarray) -> np.ndarray:
    """Degrees between +z (where the neutral head's eyes look) and each point of an eyeball's
    shell, seen from the centre of the sphere that fits the shell best (least squares)."""
    system = np.c_[2 * shell, np.ones(len(shell))]
    centre = np.linalg.lstsq(system, (shell ** 2).sum(1), rcond=None)[0][:3]
    outward = shell - centre
    return np.degrees(np.arccos(np.clip(outward[:, 2] / np.linalg.norm(outward, axis=1), -1, 1)))


def _bezier(p0, p1, p2, n=12) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


class FaceRenderer:
    def __init__(self, facekit: FaceKit, size: int = 256, *, plain_camera: bool = False):
        """plain_camera: exposure and an exact sRGB encoding only (no white balance, tone curve,
        blur, noise or JPEG): the photometric model's own camera, for checking it."""
        self.kit = facekit
        self.size = size
        self.plain_camera = plain_camera
        self.noise = NoiseBank()
        self.lm = facekit.landmark_uv
        m = facekit.material
        material = facekit.triangle_material
        self.is_face = material == m["M_Face"]
        self.is_eye = np.isin(material, [m["M_ScleraLeft"], m["M_ScleraRight"]])
        # Each eyeball's outer shell (the sclera material, cornea bulge and all) encloses its iris
        # sphere, so a ray never meets the iris: the shell is coloured by the angle from the gaze.
        self.gaze_angle = np.full(len(facekit.neutral), 180.0, np.float32)
        for side in ("Left", "Right"):
            corners = np.unique(facekit.triangles[material == m[f"M_Sclera{side}"]])
            if len(corners) >= 4:
                self.gaze_angle[corners] = angles_from_gaze(facekit.neutral[corners])
        self.is_mouth = np.isin(material, [m["M_Teeth"], m["M_GumsTongue"]])
        self.is_teeth = material == m["M_Teeth"]
        self.is_back = material == m["M_BackHead"]
        self.vertex_uv = np.zeros((len(facekit.neutral), 2), np.float32)
        self.vertex_uv[facekit.triangles.ravel()] = facekit.triangle_uv.reshape(-1, 2)
        self.is_face_vertex = np.zeros(len(facekit.neutral), bool)
        self.is_face_vertex[facekit.triangles[self.is_face].ravel()] = True
        self.is_back_vertex = np.zeros(len(facekit.neutral), bool)
        self.is_back_vertex[facekit.triangles[self.is_back].ravel()] = True
        # The neck's lower end flares out into a cut: the torso (body.py) takes over above it.
        self.above_neck_cut = (facekit.neutral[facekit.triangles, 1] > body.NECK_CUT).any(1)

    # --- public ------------------------------------------------------------------------------
    def training_sample(self, seed: int) -> Sample:
        """Face crops 55%, head-and-shoulders 30%, upper body 15%."""
        pick = np.random.default_rng([seed, 3]).random()
        framing = "face" if pick < 0.55 else "person" if pick < 0.85 else "body"
        return self.render(training_person(self.kit, seed), seed, framing)

    def test_sample(self, index: int, framing: str = "face", *, light_seed: int | None = None,
                    paint: bool = False) -> Sample:
        person, seed = held_out_person(self.kit, index)
        return self.render(person, seed, framing, light_seed=light_seed, paint=paint)

    def render(self, person: Person, seed: int, framing: str = "face", *, light_seed: int | None = None,
               paint: bool = False) -> Sample:
        """light_seed: draw the light and camera from this seed instead (the same person, pose,
        skin and surroundings under another light); paint: freckles and lipstick painted on
        (pigment only: everything else, relief included, stays as it was)."""
        rng = np.random.default_rng([seed, 2])
        light_rng = np.random.default_rng([seed if light_seed is None else light_seed, 4])
        paint_rng = np.random.default_rng([seed, 6]) if paint else None
        return self.render_view(person, sample_view(rng, self.size, framing), rng, light_rng, paint_rng)

    def _body_parts(self, rng, vertices, normals_model) -> list[body.Part]:
        """Hair, torso, and sometimes glasses and a hand, for this head."""
        lm = self.kit.landmark_vertices
        parts = []
        if rng.random() > 0.12:   # not bald
            hair_line = self._hair_line(rng)
            y = vertices[:, 1]
            covered = (self.is_back_vertex & ~self.is_face_vertex & (y > 2.0 - 6 * rng.random())) | (
                self.is_face_vertex & (self.vertex_uv[:, 1] > hair_line(self.vertex_uv[:, 0])))
            if rng.random() < 0.6:  # short hair or tucked behind: the ears show
                ears = (np.abs(vertices[:, 0]) > 6.5) & (y < 6) & (vertices[:, 2] > -5)
                covered &= ~ears
            parts += body.hair_parts(rng, vertices, normals_model, self.kit.triangles, covered)
        turn = rotation(rng.normal(0, 15), rng.normal(0, 6), rng.normal(0, 4)).T
        parts.append(body.torso(rng, turn))
        if rng.random() < 0.2:
            ear_z = float(vertices[lm[0], 2]) - 1.0
            parts.append(body.glasses(rng, vertices[lm[RIGHT_EYE]].mean(0), vertices[lm[LEFT_EYE]].mean(0), ear_z))
        if rng.random() < 0.06:
            parts.append(body.hand(rng, vertices[lm[rng.choice([CHIN, JAW_RIGHT, JAW_LEFT])]]))
        return parts

    def render_view(self, person: Person, view: View, rng: np.random.Generator,
                    light_rng: np.random.Generator | None = None,
                    paint_rng: np.random.Generator | None = None) -> Sample:
        """light_rng draws the light and the camera (rng by default), paint_rng the painted
        pigment (none by default)."""
        light_rng = light_rng or rng
        s = self.size
        head = self.kit.vertices(person)
        head_normals = vertex_normals(head, self.kit.triangles)
        parts = self._body_parts(rng, head, head_normals)
        # One mesh for the rasteriser: the head, then each part (own normals, own texture
        # coordinates; per triangle, which part it belongs to).
        vertices = np.concatenate([head] + [p.vertices for p in parts])
        normals_model = np.concatenate([head_normals] + [vertex_normals(p.vertices, p.triangles) for p in parts])
        offsets = np.cumsum([len(head)] + [len(p.vertices) for p in parts])
        head_triangles = np.where(self.above_neck_cut[:, None], self.kit.triangles, 0)  # cut: degenerate
        triangles = np.concatenate([head_triangles] + [p.triangles + o for p, o in zip(parts, offsets)])
        corner_uv = np.concatenate([np.pad(self.kit.triangle_uv, ((0, 0), (0, 0), (0, 1)))] + [
            np.pad(p.uv, ((0, 0), (0, 0), (0, 3 - p.uv.shape[-1]))) for p in parts])
        part_of = np.concatenate([np.zeros(len(self.kit.triangles), np.int8)] + [
            np.full(len(p.triangles), p.kind, np.int8) for p in parts])
        styles = {p.kind: p.style for p in parts}
        extra = len(triangles) - len(self.kit.triangles)
        head_only = {name: np.pad(getattr(self, name), (0, extra)) for name in
                     ("is_face", "is_eye", "is_mouth", "is_teeth", "is_back")}
        gaze_angle_vertex = np.pad(self.gaze_angle, (0, len(vertices) - len(head)), constant_values=180.0)

        # The crop: a window of the photo centred (give or take the shift) on the face.
        r = view.head
        focal = view.fill * s * view.distance / FACE_HEIGHT_CM
        centre_cam = view.face_centre()
        cam = (vertices - FACE_CENTRE) @ r.T + centre_cam
        depth = -cam[:, 2]
        proj = np.stack([focal * cam[:, 0] / depth, -focal * cam[:, 1] / depth], 1)
        face_px = np.array([focal * centre_cam[0] / view.distance, -focal * centre_cam[1] / view.distance])
        screen = proj - face_px + s / 2 + view.shift
        fragments = rasterize(screen, depth, triangles, s, s)

        covered = fragments.triangle >= 0
        tri = np.where(covered, fragments.triangle, 0)
        at_vertices = np.concatenate([normals_model @ r.T, cam, gaze_angle_vertex[:, None]], -1)
        attributes = fragments.interpolate(at_vertices, triangles)  # one gather for all
        normals, position, gaze_angle = attributes[..., :3], attributes[..., 3:6], attributes[..., 6]
        texture_coords = fragments.interpolate(corner_uv)  # per corner: UV seams split vertices
        uv, cloth = texture_coords[..., :2], texture_coords[..., 2]
        normals = unit(normals, 1e-8)
        part = np.where(covered, part_of[tri], -1)
        is_face, is_eye, is_mouth = (head_only[k][tri] for k in ("is_face", "is_eye", "is_mouth"))

        skin = covered & is_face
        # Skin relief: bends the normals that the image is shaded with AND the ground truth.
        age = rng.beta(1.5, 2.5)
        texture = _pixel_footprint_blur(self._height_texture(rng, age), _texels_per_pixel(uv, skin))
        height = self._sample_uv(texture, uv, skin)
        normals = _bump(normals, position, height, skin)
        hair = part == body.HAIR
        if hair.any():   # strands and clumps flowing along the hair's v
            normals = _bump(normals, position, self._hair_height(rng, uv, hair, styles[body.HAIR]), hair)
        torso_cloth = (part == body.TORSO) & (cloth > 0.5)
        if torso_cloth.any():  # the weave: fine relief, printed patterns are colour only
            weave = self._sample_tile(self.noise.tiles[0.7], uv * [600, 300], torso_cloth) * rng.uniform(0, 0.01)
            normals = _bump(normals, position, weave, torso_cloth)
        normals[~covered] = (0, 0, 1)

        albedo, specular_weight = self._albedo(rng, uv, tri, covered, skin, hair, gaze_angle, head_only,
                                               paint_rng)
        self._body_albedo(rng, albedo, specular_weight, part, uv, cloth, styles)
        body_skin = skin | (part == body.HAND) | ((part == body.TORSO) & (cloth <= 0.5))
        radiance, light = self._shade(light_rng, normals, position,
                                      depth_map=np.where(covered, -position[..., 2], np.inf), albedo=albedo,
                                      specular_weight=specular_weight, skin=body_skin, focal=focal)
        # Mouth interior sits in the dark.
        radiance[covered & is_mouth] *= light_rng.uniform(0.15, 0.5)

        image, drawn_over = self._surroundings(rng, radiance, covered, screen)
        image, gain = _camera(light_rng, image, self.plain_camera)
        seen = covered & ~drawn_over
        above_chin = uv[..., 1] > self.lm[8, 1] - 0.02
        face = seen & (part == 0) & ((skin & above_chin) | is_eye)
        valid = seen & ~is_mouth
        # Lit in camera space (where the lights are); the truth is what the crop can show.
        truth = np.where(covered[..., None], normals @ view.to_view_space(), normals)
        light = sh.rotate(light * gain, view.to_view_space())
        return Sample(image, truth.astype(np.float32), face.astype(np.float32),
                      valid.astype(np.float32), covered.astype(np.float32),
                      np.where(covered[..., None], albedo, 0).astype(np.float32), light,
                      np.where(covered, -position[..., 2] * focal / view.distance, 0).astype(np.float32))

    def _sample_tile(self, tile: np.ndarray, points: np.ndarray, where: np.ndarray) -> np.ndarray:
        """A noise tile read at texture points (pixels of the tile, wrapping), zero elsewhere."""
        size = tile.shape[0]
        points = np.where(where[..., None], points, 0).astype(np.float32) % size
        sampled = cv2.remap(tile, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        sampled[~where] = 0
        return sampled

    def _hair_height(self, rng, uv, hair, style) -> np.ndarray:
        """Height (cm) over the hair: fine strands and broad clumps, both long along the flow (v)."""
        scale = style["strand_scale"]
        offset = rng.uniform(0, 1000, 2)
        strands = self._sample_tile(self.noise.tiles["strands"], uv * [700 * scale, 400] + offset, hair)
        clumps = self._sample_tile(self.noise.tiles["clumps"], uv * [250 * scale, 120] + offset, hair)
        return style["strand_depth"] * strands + style["clump_depth"] * clumps

    def _body_albedo(self, rng, albedo, specular, part, uv, cloth, styles) -> None:
        """Colours of the body parts, in place: clothes with printed patterns (pigment only: the
        relief is the same whatever is printed), skin above the neckline and on the hand, frames."""
        s = self.size
        tone = self._tone
        torso = part == body.TORSO
        skin = torso & (cloth <= 0.5)
        albedo[skin] = tone * 0.95
        fabric = torso & (cloth > 0.5)
        if fabric.any():
            base = rng.uniform(0.01, 0.7, 3) ** 1.5
            other = rng.uniform(0.01, 0.7, 3) ** 1.5
            u, v = uv[..., 0] * rng.uniform(20, 120), uv[..., 1] * rng.uniform(10, 60)
            kind = rng.integers(0, 5)
            if kind == 0:
                pattern = np.zeros((s, s), np.float32)
            elif kind == 1:
                pattern = (np.sin(u) > 0.3).astype(np.float32)                      # stripes
            elif kind == 2:
                pattern = ((np.sin(u) > 0) ^ (np.sin(v) > 0)).astype(np.float32)    # checks
            elif kind == 3:
                pattern = ((np.sin(u) * np.sin(v)) > 0.7).astype(np.float32)        # dots
            else:
                pattern = (self._sample_tile(self.noise.tiles[3], uv * [500, 250], fabric) > 0.8).astype(np.float32)
            mix = pattern[fabric, None]
            albedo[fabric] = base * (1 - mix) + other * mix
            specular[fabric] = rng.uniform(0.0, 0.3)
        hand = part == body.HAND
        albedo[hand] = tone
        specular[hand] = 0.4
        frame = part == body.FRAME
        if frame.any():
            albedo[frame] = styles[body.FRAME]["colour"]
            specular[frame] = 1.5

    # --- textures in the face's UV space ---------------------------------------------------
    def _sample_uv(self, texture: np.ndarray, uv: np.ndarray, where: np.ndarray) -> np.ndarray:
        points = _uv_points(np.where(where[..., None], uv, 0), texture.shape[0]).astype(np.float32)
        sampled = cv2.remap(texture, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        sampled[~where] = 0
        return sampled

    def _height_texture(self, rng: np.random.Generator, age: float) -> np.ndarray:
        """Height in cm over the face tile: pores, fine wrinkles and the creases of a face."""
        lm, n = self.lm, self.noise
        shape = (UV_SIZE, UV_SIZE)
        height = n.sample(rng, 0.7, shape) * rng.uniform(0.002, 0.008)           # pores
        height += n.sample(rng, 1.5, shape) * rng.uniform(0.001, 0.006)          # fine texture
        height += n.sample(rng, 12, shape) * rng.uniform(0.0, 0.05)              # soft unevenness
        creases = np.zeros(shape, np.float32)
        depth = 0.3 + 0.7 * age
        # forehead lines
        for _ in range(rng.integers(0, 2 + int(5 * age))):
            v = rng.uniform(0.84, 0.95)
            u0, u1 = rng.uniform(0.28, 0.42), rng.uniform(0.58, 0.72)
            bend = rng.uniform(-0.015, 0.02)
            _draw_curve(creases, _bezier(np.array([u0, v]), np.array([0.5, v + bend]),
                                         np.array([u1, v + rng.uniform(-0.01, 0.01)])),
                        rng.uniform(0.3, 1.0) * depth, int(rng.integers(1, 3)))
        # frown lines between the brows
        if rng.random() < 0.2 + 0.6 * age:
            for side in (-1, 1):
                u = 0.5 + side * rng.uniform(0.01, 0.03)
                _draw_curve(creases, np.array([[u, 0.79], [u + side * 0.005, 0.85]]), 0.8 * depth, 2)
        for side, corner, lids in ((-1, 36, (37, 38)), (1, 45, (44, 43))):
            # crow's feet fanning out from the outer eye corner
            for _ in range(rng.integers(0, 1 + int(6 * age))):
                angle = rng.uniform(-0.6, 0.6)
                start = lm[corner] + np.array([side * 0.02, 0])
                length = rng.uniform(0.02, 0.06)
                end = start + length * np.array([side * math.cos(angle), math.sin(angle)])
                _draw_curve(creases, np.stack([start, end]), rng.uniform(0.3, 0.8) * depth, 1)
            # upper eyelid crease
            lid = np.stack([lm[corner], lm[lids[0]], lm[lids[1]], lm[39 if side < 0 else 42]])
            _draw_curve(creases, lid + np.array([0, rng.uniform(0.012, 0.025)]), 0.8, 2)
            # lower lid / eye bag
            if rng.random() < 0.3 + 0.6 * age:
                bag = np.stack([lm[corner], lm[41 if side < 0 else 46], lm[40 if side < 0 else 47],
                                lm[39 if side < 0 else 42]])
                _draw_curve(creases, bag - np.array([0, rng.uniform(0.02, 0.035)]), 0.5 * depth, 2)
            # nasolabial fold: nose wing to beyond the mouth corner
            if rng.random() < 0.5 + 0.5 * age:
                wing = lm[31 if side < 0 else 35] + np.array([side * 0.03, 0.01])
                mouth = lm[48 if side < 0 else 54] + np.array([side * 0.03, -0.04])
                mid = (wing + mouth) / 2 + np.array([side * 0.02, 0])
                _draw_curve(creases, _bezier(wing, mid, mouth), rng.uniform(0.5, 1.5) * depth,
                            int(rng.integers(2, 5)))
        # vertical lip lines
        for _ in range(rng.integers(0, 4 + int(12 * age))):
            u = rng.uniform(*sorted((lm[48, 0] + 0.02, lm[54, 0] - 0.02)))
            v = rng.choice([lm[51, 1], lm[57, 1]]) + rng.uniform(-0.01, 0.01)
            _draw_curve(creases, np.array([[u, v - 0.012], [u, v + 0.012]]), 0.3, 1)
        creases = cv2.GaussianBlur(creases, (0, 0), 1.2)  # type: ignore[assignment]
        height -= creases * rng.uniform(0.03, 0.08)          # creases are grooves, up to ~0.8 mm
        # ears: folds on the outer tile edges
        ears = n.sample(rng, 3, shape) * 0.03
        edge = np.zeros(shape, np.float32)
        edge[:, : int(0.07 * UV_SIZE)] = 1
        edge[:, -int(0.07 * UV_SIZE):] = 1
        return (height + ears * cv2.GaussianBlur(edge, (0, 0), 4)).astype(np.float32)

    def _hair_line(self, rng: np.random.Generator):
        """v above which the forehead is covered by hair, as a function of u."""
        if rng.random() < 0.2:
            return lambda u: np.full_like(u, 2.0)     # bald or hair swept back: no cover
        top = rng.uniform(0.86, 0.98)
        fringe = rng.uniform(0.0, 0.1) if rng.random() < 0.35 else 0.0
        centre, width = rng.uniform(0.35, 0.65), rng.uniform(0.1, 0.3)
        return lambda u: top - fringe * np.exp(-((u - centre) / width) ** 2) - 0.12 * (
            np.abs(u - 0.5) > 0.3) * (np.abs(u - 0.5) - 0.3) * 4

    def _albedo(self, rng, uv, tri, covered, skin, hair, gaze_angle, head_only, paint_rng=None):
        """Linear-RGB albedo per pixel, and a specular weight (oily, wet or dry); paint_rng:
        freckles and lipstick painted over the skin's own colours."""
        n, lm = self.noise, self.lm
        s = self.size
        # Skin tone: from very light to very dark, with a warm bias; all linear RGB.
        darkness = rng.beta(1.3, 1.6)
        light, dark = np.array([0.78, 0.55, 0.45]), np.array([0.09, 0.045, 0.03])
        tone = light * (dark / light) ** darkness
        tone = tone * np.exp(rng.normal(0, [0.06, 0.06, 0.08]))
        self._tone = tone.astype(np.float32)   # the body parts' skin (_body_albedo) matches
        size = UV_SIZE // 2
        texture = np.ones((size, size, 3), np.float32) * tone.astype(np.float32)
        shape = (size, size)
        blotch = n.sample(rng, 24, shape)[..., None] * rng.uniform(0.02, 0.1)
        redness = n.sample(rng, 12, shape)[..., None] * rng.uniform(0.0, 0.08) * np.array([1, -0.5, -0.5])
        texture *= np.exp(blotch + redness + n.sample(rng, 0.7, shape)[..., None] * 0.04)
        lips = np.zeros(shape, np.float32)
        cv2.fillPoly(lips, [np.round(_uv_points(lm[48:60], size) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        lips = cv2.GaussianBlur(lips, (0, 0), 1)[..., None]
        lip_colour = tone * np.array([1.0, 0.55, 0.6]) * rng.uniform(0.6, 1.0)
        if rng.random() < 0.15:  # lipstick
            lip_colour = rng.uniform([0.2, 0.0, 0.02], [0.6, 0.1, 0.2])
        texture = texture * (1 - lips) + lip_colour.astype(np.float32) * lips
        hair_colour = np.array([0.02, 0.012, 0.008]) * math.exp(rng.normal(0, 1.0))
        if rng.random() < 0.15:
            hair_colour = np.full(3, rng.uniform(0.1, 0.5))            # gray or white hair
        if rng.random() < 0.15:
            hair_colour = np.array([0.35, 0.2, 0.08]) * rng.uniform(0.3, 1.0)  # blond / red
        brows = np.zeros(shape, np.float32)
        for part in (lm[17:22], lm[22:27]):
            _draw_curve(brows, part + np.array([0, 0.01]), 1.0, int(rng.integers(3, 7)))
        brows = cv2.GaussianBlur(brows, (0, 0), 1) * np.clip(0.6 + 0.5 * n.sample(rng, 0.7, shape), 0, 1)
        brows = (brows * rng.uniform(0.4, 1.0))[..., None]
        texture = texture * (1 - brows) + hair_colour.astype(np.float32) * brows
        if rng.random() < 0.2:  # stubble or beard shadow
            beard = np.zeros(shape, np.float32)
            outline = np.concatenate([lm[2:15], lm[35:30:-1] + np.array([0, -0.02])])
            cv2.fillPoly(beard, [np.round(_uv_points(outline, size) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
            beard = cv2.GaussianBlur(beard, (0, 0), 3) * (1 - lips[..., 0])
            speckle = np.clip(n.sample(rng, 0.7, shape) * 0.5 + 0.5, 0, 1)
            amount = (beard * speckle * rng.uniform(0.2, 0.8))[..., None]
            texture = texture * (1 - amount) + hair_colour.astype(np.float32) * amount
        if rng.random() < 0.15:  # freckles or moles
            dots = np.clip(n.sample(rng, 0.7, shape) - rng.uniform(1.8, 2.6), 0, None)
            texture *= np.exp(-dots * 1.5)[..., None]
        if paint_rng is not None:
            dots = np.clip(n.sample(paint_rng, 0.7, shape) - 1.8, 0, None)
            texture *= np.exp(-dots * 2.0)[..., None]
            lipstick = paint_rng.uniform([0.2, 0.0, 0.02], [0.6, 0.1, 0.2]).astype(np.float32)
            texture = texture * (1 - lips) + lipstick * lips

        albedo = self._sample_uv(texture, uv, skin)
        specular = np.zeros((s, s), np.float32)
        specular[skin] = rng.uniform(0.2, 1.0) * np.clip(
            1 + 0.5 * n.sample(rng, 6, (s, s)), 0.2, 2)[skin]

        eye = covered & head_only["is_eye"][tri]
        albedo[eye] = np.array([0.5, 0.42, 0.4]) * rng.uniform(0.5, 1.0)
        # Seen through the cornea (the shell's bulge, ~25 degrees around the gaze): iris and pupil.
        iris_angle = rng.uniform(23, 28)
        iris = eye & (gaze_angle < iris_angle)
        iris_colour = rng.choice([np.array([0.05, 0.025, 0.01]), np.array([0.05, 0.1, 0.15]),
                                  np.array([0.05, 0.08, 0.03]), np.array([0.08, 0.08, 0.08])])
        iris_colour = iris_colour * math.exp(rng.normal(0, 0.4))
        pupil = gaze_angle < iris_angle * rng.uniform(0.2, 0.55)
        albedo[iris] = np.where(pupil[iris, None], 0.005, iris_colour)
        specular[eye] = 1.5      # wet
        mouth = covered & head_only["is_mouth"][tri]
        albedo[mouth] = np.where(head_only["is_teeth"][tri][mouth, None], np.array([0.6, 0.55, 0.45]),
                                 tone * np.array([1.0, 0.4, 0.4]))
        back = covered & head_only["is_back"][tri]
        albedo[back] = tone * 0.95  # neck, ears and scalp skin
        strands = np.clip(0.7 + 0.5 * self._sample_tile(n.tiles["strands"], uv * [700, 400], hair), 0.1, 1.5)
        albedo[hair] = (hair_colour * strands[hair, None]).astype(np.float32)
        specular[hair] = 0.5
        return albedo, specular

    # --- light -------------------------------------------------------------------------------
    def _shade(self, rng, normals, position, depth_map, albedo, specular_weight, skin, focal):
        """Linear radiance, and the diffuse light as SH coefficients (9, 3), camera space."""
        s = self.size
        # Ambient: second-order spherical harmonics, coloured.
        base = rng.uniform(0.05, 0.8)
        tint = np.exp(rng.normal(0, 0.12, 3))
        light = np.zeros((9, 3), np.float32)
        light[0] = base * tint
        light[1:4] = rng.normal(0, 0.35, (3, 1)) * base * tint * rng.uniform(0, 1)
        light[4:] = rng.normal(0, 0.12, (5, 1)) * base * tint
        irradiance = np.clip(sh.shade(normals, light), 0, None)
        view = unit(-position, 1e-6)
        specular = np.zeros((s, s, 3), np.float32)
        for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
            direction = rng.normal(0, 1, 3)
            direction[2] = abs(direction[2]) * rng.uniform(0.2, 1.5) - 0.1
            direction /= np.linalg.norm(direction)
            colour = np.exp(rng.normal(0, 0.1, 3)) * rng.uniform(0.4, 2.5)
            # The key light projected onto SH exactly: its lobe is the second-order cosine, which
            # reaches a little past 90 degrees (what the wrap term did before version 7).
            key = sh.project_light(direction, colour)
            light += key
            cosine = normals @ direction
            shadow = _screen_space_shadow(depth_map, position, direction, focal, rng.uniform(0.5, 4),
                                          facing=cosine > -0.35)
            irradiance += np.clip(sh.shade(normals, key), 0, None) * shadow[..., None]
            half = view + direction
            half = unit(half, 1e-6)
            shininess = math.exp(rng.uniform(math.log(8), math.log(120)))
            strength = rng.uniform(0.02, 0.25) * (shininess + 8) / (8 * math.pi)
            highlight = np.clip(np.einsum("hwc,hwc->hw", normals, half), 0, None) ** shininess
            specular += (strength * highlight * np.clip(cosine, 0, None) * shadow)[..., None] * colour
        # Subsurface scattering softens skin's shading, red the most.
        softness = rng.uniform(0.3, 2.0)
        weight = skin.astype(np.float32)
        for channel, sigma in enumerate(softness * np.array([1.6, 0.9, 0.6])):
            blurred = cv2.GaussianBlur(irradiance[..., channel] * weight, (0, 0), sigma)
            norm = cv2.GaussianBlur(weight, (0, 0), sigma).clip(1e-4)
            irradiance[..., channel] = np.where(skin, blurred / norm, irradiance[..., channel])
        return albedo * irradiance + specular * specular_weight[..., None], light

    # --- what is around the face -----------------------------------------------------------
    def _surroundings(self, rng, radiance, covered, screen):
        s = self.size
        image = np.where(covered[..., None], radiance, _background(rng, self.noise, s))
        occluded = np.zeros((s, s), bool)
        landmarks = screen[self.kit.landmark_vertices]
        layer = np.zeros((s, s), np.float32)
        colour_layer = np.zeros((s, s, 3), np.float32)
        if rng.random() < 0.25:  # loose hair strands over the face
            colour = np.exp(rng.normal(math.log(0.03), 1.0)) * np.array([1.0, 0.7, 0.5])
            for _ in range(rng.integers(5, 60)):
                start = landmarks[rng.integers(BROWS.start, BROWS.stop)] + rng.normal(0, 8, 2) - np.array([0, 20])
                bend = start + rng.normal(0, 25, 2) + np.array([0, 30])
                end = bend + rng.normal(0, 25, 2) + np.array([0, 30])
                pts = np.round(_bezier(start, bend, end) * 16).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(layer, [pts], False, 1.0, 1, cv2.LINE_AA, shift=4)
            colour_layer[:] = colour
        if rng.random() < 0.04:  # an object in front of the lower face (a hand is a body part)
            blob = np.zeros((s, s), np.float32)
            centre = landmarks[rng.choice([CHIN, JAW_RIGHT, JAW_LEFT, LOWER_LIP])] + rng.normal(0, 10, 2)
            axes = (int(rng.uniform(15, 45)), int(rng.uniform(25, 60)))
            cv2.ellipse(blob, tuple(np.round(centre).astype(int)), axes, rng.uniform(0, 180), 0, 360, 1.0,
                        -1, cv2.LINE_AA)
            colour_layer[blob > 0] = rng.uniform(0.02, 0.6, 3)
            layer = np.maximum(layer, blob)
        image = image * (1 - layer[..., None]) + colour_layer * layer[..., None]
        occluded |= layer > 0.25
        return image, occluded


def _interior(where: np.ndarray) -> np.ndarray:
    """Where the whole 3x3 neighbourhood is inside: finite differences across edges are junk."""
    return cv2.erode(where.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _texels_per_pixel(uv: np.ndarray, where: np.ndarray) -> float:
    """The typical side of one screen pixel's footprint on the face tile, in relief texels."""
    texel = uv * UV_SIZE
    jacobian_det = (np.gradient(texel[..., 0], axis=1) * np.gradient(texel[..., 1], axis=0)
                    - np.gradient(texel[..., 0], axis=0) * np.gradient(texel[..., 1], axis=1))
    inner = _interior(where)
    if not inner.any():
        return 1.0
    return float(np.sqrt(np.median(np.abs(jacobian_det[inner]))))


def _pixel_footprint_blur(texture: np.ndarray, texels_per_pixel: float) -> np.ndarray:
    """What one camera pixel records of a relief drawn finer than the pixel: its average (a
    Gaussian of the footprint's width, as mip-mapping does), not a point sample that aliases pores
    into per-pixel speckle no image can show."""
    if texels_per_pixel <= 1:
        return texture
    return cv2.GaussianBlur(texture, (0, 0), 0.5 * texels_per_pixel, borderType=cv2.BORDER_REFLECT)


def _bump(normals, position, height, where):
    """Bend normals by a height field given per pixel (Mikkelsen's surface gradient, with screen
    derivatives of position and height)."""
    dpdx = np.gradient(position, axis=1)
    dpdy = np.gradient(position, axis=0)
    dhdx = np.gradient(height, axis=1)
    dhdy = np.gradient(height, axis=0)
    r1 = np.cross(dpdy, normals)
    r2 = np.cross(normals, dpdx)
    det = np.einsum("hwc,hwc->hw", dpdx, r1)
    gradient = np.sign(det)[..., None] * (dhdx[..., None] * r1 + dhdy[..., None] * r2)
    bent = np.abs(det)[..., None] * normals - gradient
    bent = unit(bent)
    inner = _interior(where) & (np.abs(det) > 1e-10)
    return np.where(inner[..., None], bent, normals)


def _screen_space_shadow(depth_map, position, direction, focal, softness, facing, steps=16):
    """1 where the light reaches the pixel, 0 in a cast shadow: march toward the light in the depth
    buffer (what is hidden from the camera casts nothing: fine for a face seen from the front).
    Only pixels facing the light are marched; the others are dark anyway."""
    s = depth_map.shape[0]
    depth = -position[..., 2]
    lit = np.ones((s, s), np.float32)
    ys, xs = np.nonzero(np.isfinite(depth_map) & facing)
    z = depth[ys, xs]
    blocked = np.zeros(len(ys), bool)
    # A border of nothing-there around the depth map: rays leaving the frame read it, so every
    # step is one plain gather.
    padded = np.pad(depth_map, 1, constant_values=np.inf)
    # step length: about 1.5 pixels at the pixel's depth
    step_cm = 1.5 * z / focal
    for k in range(1, steps + 1):
        travel = step_cm * k
        px = xs + 0.5 + direction[0] * travel * focal / z
        py = ys + 0.5 - direction[1] * travel * focal / z
        ray_depth = z - direction[2] * travel
        ix = np.clip(np.floor(px).astype(int), -1, s) + 1
        iy = np.clip(np.floor(py).astype(int), -1, s) + 1
        blocked |= padded[iy, ix] < ray_depth - 0.3
    lit[ys[blocked], xs[blocked]] = 0
    return cv2.GaussianBlur(lit, (0, 0), softness)


def _background(rng, noise: NoiseBank, s: int) -> np.ndarray:
    kind = rng.integers(0, 4)
    a, b = rng.uniform(0, 0.8, 3) ** 2, rng.uniform(0, 0.8, 3) ** 2
    if kind == 0:
        return np.broadcast_to(a, (s, s, 3)).astype(np.float32).copy()
    if kind == 1:
        t = np.linspace(0, 1, s)[:, None] * math.cos(rng.uniform(0, math.pi)) + \
            np.linspace(0, 1, s)[None, :] * math.sin(rng.uniform(0, math.pi))
        t = (t - t.min()) / np.ptp(t)
        return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.float32)
    if kind == 2:
        sigma = rng.choice([1.5, 6, 24, 48])
        t = np.clip(0.5 + 0.3 * noise.sample(rng, sigma, (s, s)), 0, 1)[..., None]
        return (a * (1 - t) + b * t).astype(np.float32)
    # a cluttered, photo-like scene: blurred shapes of many colours
    image = np.broadcast_to(a, (s, s, 3)).astype(np.float32).copy()
    for _ in range(rng.integers(4, 20)):
        colour = tuple(float(c) for c in rng.uniform(0, 0.8, 3) ** 2)
        if rng.random() < 0.5:
            p0 = tuple(int(v) for v in rng.integers(-s // 2, s, 2))
            p1 = tuple(int(v) for v in np.array(p0) + rng.integers(10, s, 2))
            cv2.rectangle(image, p0, p1, colour, -1)
        else:
            cv2.ellipse(image, tuple(int(v) for v in rng.integers(0, s, 2)),
                        tuple(int(v) for v in rng.integers(5, s // 2, 2)), float(rng.uniform(0, 180)),
                        0, 360, colour, -1)
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 6))


def _camera(rng, radiance: np.ndarray, plain: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Linear radiance -> an sRGB photo: exposure, white balance, blur, tone curve, noise, JPEG;
    and the gain per channel from radiance to the photo's linear values (white balance and
    exposure).  plain: exposure and an exact sRGB encoding only."""
    balance = np.ones(3, np.float32) if plain else np.exp(rng.normal(0, 0.05, 3)).astype(np.float32)
    image = radiance * balance
    exposure = max(float(np.percentile(image, 99)), 1e-4) * rng.uniform(0.8, 1.4)
    image /= exposure
    gain = balance / exposure
    if plain:
        return linear_to_srgb(image), gain
    if rng.random() < 0.6:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.3))
    image = np.clip(image, 0, 1) ** (1 / rng.uniform(1.8, 2.6))
    if rng.random() < 0.3:  # an S-shaped contrast curve
        k = rng.uniform(0.0, 0.5)
        image = image + k * image * (1 - image) * (2 * image - 1)
    image = image + rng.normal(0, rng.uniform(0, 0.03), image.shape).astype(np.float32)
    if rng.random() < 0.08:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    image = np.clip(image, 0, 1)
    if rng.random() < 0.7:
        quality = int(rng.integers(30, 96))
        coded = cv2.imencode(".jpg", (image[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.imdecode(coded, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    return image.astype(np.float32), gain
