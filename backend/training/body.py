"""What a portrait shows beyond the head model's skin, as meshes with exact normals: hair over the
scalp (and hanging to the shoulders), shoulders and chest in clothes, glasses frames, a hand.

Each part is a triangle mesh in the head model's space (cm, +y up, the face looking toward +z),
rendered by the same rasteriser, lights and camera as the head (synthetic.py), so its ground truth
is as exact as the face's.  Every part carries per-corner texture coordinates that say what its
colour and relief follow: strands run along v on hair, fabric prints and folds lie in (around,
down) on the torso.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

HAIR, TORSO, FRAME, HAND = 1, 2, 3, 4   # part codes (0 is the head model itself)
NECK_PIVOT = np.array([0.0, -12.0, -2.5], np.float32)  # where the torso turns against the head
NECK_CUT = -13.0        # the head model's neck is dropped below this height (cm): it flares out
HEAD_CENTRE = np.array([0.0, 3.0, -1.0], np.float32)   # of the skull, for the hair's directions


@dataclasses.dataclass
class Part:
    kind: int
    vertices: np.ndarray    # (V, 3) float32, head model space
    triangles: np.ndarray   # (T, 3) int, counter-clockwise seen from outside
    uv: np.ndarray          # (T, 3, 2) float32 per-corner texture coordinates
    style: dict = dataclasses.field(default_factory=dict)  # what the renderer's colours need


def grid_triangles(rows: int, columns: int, wrap: bool) -> np.ndarray:
    """Two triangles per cell of a rows x columns vertex grid (row-major), wound so that a grid
    whose rows run down and columns run counter-clockwise seen from above faces outward."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(columns if wrap else columns - 1), indexing="ij")
    a = r * columns + c
    b = r * columns + (c + 1) % columns
    below_a, below_b = a + columns, b + columns
    return np.concatenate([np.stack([a, below_a, b], -1).reshape(-1, 3),
                           np.stack([b, below_a, below_b], -1).reshape(-1, 3)])


def corner_uv(vertex_uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    return vertex_uv[triangles].astype(np.float32)


def orient_outward(vertices: np.ndarray, triangles: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Flip the triangles whose face normal points toward `inside` (per triangle, (T, 3) points)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    normal = np.cross(b - a, c - a)
    inward = np.einsum("tc,tc->t", normal, (a + b + c) / 3 - inside) < 0
    fixed = triangles.copy()
    fixed[inward] = fixed[inward][:, [0, 2, 1]]
    return fixed


def tube(points: np.ndarray, radius: np.ndarray | float, sides: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tube of circular cross-section along a polyline: vertices, triangles (outward) and per-
    vertex (around, along) coordinates."""
    points = np.asarray(points, np.float32)
    radius = np.broadcast_to(np.asarray(radius, np.float32), (len(points),))
    tangent = np.gradient(points, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True).clip(1e-6)
    helper = np.where(np.abs(tangent[:, 1:2]) < 0.9, [[0, 1, 0]], [[1, 0, 0]]).astype(np.float32)
    side = np.cross(tangent, helper)
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    up = np.cross(side, tangent)
    angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    ring = np.cos(angles)[None, :, None] * side[:, None] + np.sin(angles)[None, :, None] * up[:, None]
    vertices = (points[:, None] + radius[:, None, None] * ring).reshape(-1, 3)
    triangles = grid_triangles(len(points), sides, wrap=True)
    triangles = orient_outward(vertices, triangles, np.repeat(points, sides, 0)[triangles[:, 0]])
    along = np.repeat(np.linspace(0, 1, len(points)), sides)
    around = np.tile(angles / (2 * math.pi), len(points))
    return vertices, triangles, np.stack([around, along], 1)


def ellipsoid(centre, radii, rotation: np.ndarray, rows: int = 16, columns: int = 24):
    """A closed ellipsoid mesh (vertices, outward triangles)."""
    theta = np.linspace(0.05, math.pi - 0.05, rows)[:, None]
    phi = np.linspace(0, 2 * math.pi, columns, endpoint=False)[None, :]
    unit_sphere = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta) + 0 * phi,
                            np.sin(theta) * np.sin(phi)], -1).reshape(-1, 3)
    vertices = (unit_sphere * radii) @ rotation.T + centre
    triangles = grid_triangles(rows, columns, wrap=True)
    triangles = orient_outward(vertices, triangles, np.broadcast_to(centre, (len(triangles), 3)))
    return vertices.astype(np.float32), triangles, unit_sphere


# --- hair ------------------------------------------------------------------------------------------

def hair_directions(points: np.ndarray, crown: np.ndarray) -> np.ndarray:
    """(around, down) coordinates about a crown direction: strands flow away from the crown."""
    outward = points - HEAD_CENTRE
    outward /= np.linalg.norm(outward, axis=1, keepdims=True).clip(1e-6)
    down = np.arccos(np.clip(outward @ crown, -1, 1)) / math.pi
    helper = np.array([0, 0, 1.0]) if abs(crown[2]) < 0.9 else np.array([1.0, 0, 0])
    e1 = np.cross(crown, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(crown, e1)
    around = (np.arctan2(outward @ e2, outward @ e1) / (2 * math.pi)) % 1.0
    return np.stack([around, down], 1).astype(np.float32)


def hair_parts(rng: np.random.Generator, head_vertices: np.ndarray, head_normals: np.ndarray,
               head_triangles: np.ndarray, covered_vertex: np.ndarray) -> list[Part]:
    """A hair shell over the scalp vertices `covered_vertex` (pushed out along their normals, more
    on top: volume), and sometimes long hair hanging from it to the shoulders."""
    parting = rng.uniform(-0.5, 0.5) if rng.random() < 0.6 else 0.0
    crown = np.array([parting, 1.0, rng.uniform(-0.6, 0.2)])
    crown /= np.linalg.norm(crown)
    style = {"strand_scale": rng.uniform(0.6, 1.6), "clump_depth": rng.uniform(0.05, 0.35),
             "strand_depth": rng.uniform(0.01, 0.05)}
    parts = []
    keep = covered_vertex[head_triangles].all(1)
    if keep.sum() > 50:
        volume = rng.uniform(0.3, 2.5)
        lift = np.clip((head_vertices[:, 1] - HEAD_CENTRE[1] + 4) / 12, 0, 1)
        thickness = 0.2 + volume * lift + rng.uniform(0, 0.4)
        shell = head_vertices + head_normals * thickness[:, None]
        used = np.unique(head_triangles[keep])
        remap = np.full(len(head_vertices), -1)
        remap[used] = np.arange(len(used))
        triangles = remap[head_triangles[keep]]
        vertices = shell[used].astype(np.float32)
        parts.append(Part(HAIR, vertices, triangles,
                          corner_uv(hair_directions(vertices, crown), triangles), style))
        if rng.random() < 0.4:  # long hair: a curtain behind and beside the neck
            parts.append(_hanging_hair(rng, vertices, crown, style))
    return parts


def _hanging_hair(rng, shell: np.ndarray, crown: np.ndarray, style: dict) -> Part:
    length = rng.uniform(8, 35)
    top = HEAD_CENTRE[1] - rng.uniform(0, 3)
    half_width = np.ptp(shell[:, 0]) / 2 + rng.uniform(-0.5, 0.8)
    depth = np.ptp(shell[:, 2]) / 2
    centre_z = (shell[:, 2].max() + shell[:, 2].min()) / 2 - 0.5
    opening = math.radians(rng.uniform(50, 80))         # the face's side of the curtain is open
    around = np.linspace(opening, 2 * math.pi - opening, 40)   # from +z (the face) round the back
    drop = np.linspace(0, 1, 24)[:, None]
    flare = 1 + rng.uniform(0.05, 0.35) * drop ** 2        # the ends spread over the shoulders
    x = half_width * flare * np.sin(around)[None]
    z = centre_z + depth * flare * np.cos(around)[None]
    y = np.broadcast_to(top - length * drop, x.shape)
    vertices = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    triangles = grid_triangles(len(drop), len(around), wrap=False)
    axis = np.c_[np.zeros(len(vertices)), vertices[:, 1], np.full(len(vertices), centre_z)]
    triangles = orient_outward(vertices, triangles, axis[triangles[:, 0]])
    uv = np.stack([np.broadcast_to(around[None] / (2 * math.pi), x.shape).ravel(),
                   0.5 + 0.5 * np.broadcast_to(drop, x.shape).ravel()], 1)
    return Part(HAIR, vertices, triangles, corner_uv(uv, triangles), style)


# --- torso -----------------------------------------------------------------------------------------

GARMENTS = ("round neck", "v neck", "collar", "turtleneck", "jacket")


def torso(rng: np.random.Generator, turn: np.ndarray) -> Part:
    """Shoulders and chest from the neck down, in a garment with folds, turned by `turn` (3x3)
    about the neck: a superellipse cross-section growing from the neck to the shoulders."""
    rows, columns = 70, 96
    length = 38.0     # cm: t runs in these units (neckline, folds and lapels are drawn in them)...
    t = np.linspace(0, 60 / length, rows)[:, None]            # ...from 0 at the neck to the waist, 60 cm
                                                              # down (the body crop shows the chest)
    around = np.linspace(0, 2 * math.pi, columns, endpoint=False)[None]   # 0 at the front (+z)
    neck = rng.uniform(6.5, 7.5)
    shoulders = rng.uniform(17, 23)
    chest = rng.uniform(9, 12)
    drop = rng.uniform(0.15, 0.3)                            # how far down the shoulders reach
    grow = np.clip(t / drop, 0, 1)
    grow = grow * grow * (3 - 2 * grow)
    half_width = neck + (shoulders - neck) * grow
    half_depth = neck + (chest - neck) * np.clip(t / (drop * 1.5), 0, 1) ** 0.7
    # A superellipse: boxier than an ellipse, as shoulders are.
    power = 2.0 / rng.uniform(2.2, 3.2)
    cos, sin = np.cos(around), np.sin(around)
    x = half_width * np.sign(sin) * np.abs(sin) ** power
    z = half_depth * np.sign(cos) * np.abs(cos) ** power
    y = np.broadcast_to(-length * t, x.shape).copy()
    y -= (shoulders - neck) * 0.35 * grow * np.abs(sin) ** 2   # the shoulders slope down and out

    garment = GARMENTS[rng.integers(len(GARMENTS))]
    neckline = np.full(around.shape, rng.uniform(0.03, 0.08))
    front = np.cos(around) ** 8
    if garment == "v neck":
        neckline = neckline + rng.uniform(0.15, 0.3) * np.clip(1 - np.abs(np.angle(np.exp(1j * around))) / 0.5, 0, 1)
    elif garment == "round neck":
        neckline = neckline + rng.uniform(0.02, 0.12) * front
    elif garment == "turtleneck":
        neckline = np.zeros_like(neckline)
    radial = np.zeros((rows, columns), np.float32)
    # Folds: a few smooth waves over the cloth, stronger low on the body and at the armpits.
    for _ in range(rng.integers(2, 7)):
        k_around, k_down = rng.integers(1, 9), rng.uniform(1, 8)
        phase = rng.uniform(0, 2 * math.pi)
        amplitude = rng.uniform(0.1, 0.8)
        radial += amplitude * np.sin(k_around * around + k_down * 2 * math.pi * t + phase) * (0.3 + t)
    # The neckline's edge stands up a little: a hem, a collar, a rolled turtleneck.
    band = {"collar": 1.2, "turtleneck": 0.9, "jacket": 0.8}.get(garment, 0.35)
    distance = t - neckline
    radial += band * np.exp(-(distance / 0.02) ** 2) * rng.uniform(0.6, 1.2)
    if garment == "jacket":   # lapels: a ridge from the neck down toward the middle of the chest
        for side in (-1, 1):
            line = side * (0.25 + 1.1 * t)
            radial += 0.9 * np.exp(-((np.angle(np.exp(1j * around)) - line) / 0.06) ** 2) * (t < 0.6)
    cloth = distance > 0
    radial = np.where(cloth, radial, 0)
    scale = 1 + radial / np.maximum(half_width, half_depth)
    points = np.stack([x * scale, y, z * scale], -1).reshape(-1, 3)
    vertices = (points @ turn.T + NECK_PIVOT).astype(np.float32)
    triangles = grid_triangles(rows, columns, wrap=True)
    axis = np.c_[np.zeros(len(points)), points[:, 1], np.zeros(len(points))] @ turn.T + NECK_PIVOT
    triangles = orient_outward(vertices, triangles, axis[triangles[:, 0]])
    uv = np.stack([np.broadcast_to(around / (2 * math.pi), x.shape).ravel(),
                   np.broadcast_to(t, x.shape).ravel()], 1)
    # Per corner: (around, down), and in a third channel whether it is cloth (1) or skin (0).
    corner = corner_uv(uv, triangles)
    is_cloth = np.broadcast_to(cloth, x.shape).ravel()[triangles].astype(np.float32)
    return Part(TORSO, vertices, triangles, np.concatenate([corner, is_cloth[..., None]], -1),
                {"garment": garment})


# --- glasses and hands -----------------------------------------------------------------------------

def glasses(rng: np.random.Generator, right_eye: np.ndarray, left_eye: np.ndarray, ear_z: float) -> Part:
    """Two rims in front of the eyes, a bridge and the temples back to the ears, as tubes."""
    radius = rng.uniform(0.1, 0.3)
    width, height = rng.uniform(2.2, 3.0), rng.uniform(1.4, 2.2)
    forward = rng.uniform(1.2, 2.0)
    pieces = []
    angle = np.linspace(0, 2 * math.pi, 33)
    outer = []
    for eye, side in ((right_eye, -1), (left_eye, 1)):
        centre = eye + np.array([side * 0.2, -0.1, forward])
        rim = centre + np.stack([width * np.cos(angle), height * np.sin(angle), 0 * angle], 1)
        pieces.append(rim)
        outer.append(centre + np.array([side * width, 0.3, 0]))
    inner_right = pieces[0][np.argmax(pieces[0][:, 0])]
    inner_left = pieces[1][np.argmin(pieces[1][:, 0])]
    bridge_mid = (inner_right + inner_left) / 2 + np.array([0, 0.4, 0.2])
    pieces.append(np.stack([inner_right, bridge_mid, inner_left]))
    for point in outer:
        pieces.append(np.stack([point, np.array([point[0] * 1.08, point[1], ear_z])]))
    vertices: list[np.ndarray] = []
    triangles: list[np.ndarray] = []
    uvs: list[np.ndarray] = []
    for piece in pieces:
        dense = _resample(piece, 0.3)
        v, t, uv = tube(dense, radius)
        triangles.append(t + sum(len(x) for x in vertices))
        vertices.append(v)
        uvs.append(uv)
    all_vertices = np.concatenate(vertices).astype(np.float32)
    all_triangles = np.concatenate(triangles)
    return Part(FRAME, all_vertices, all_triangles, corner_uv(np.concatenate(uvs), all_triangles),
                {"colour": rng.uniform(0, 0.3, 3) if rng.random() < 0.7 else rng.uniform(0.3, 0.8, 3)})


def hand(rng: np.random.Generator, near: np.ndarray) -> Part:
    """A hand near the chin or cheek: a flattened palm and four fingers."""
    spin = rng.uniform(-1, 1) * math.pi
    turn = np.array([[math.cos(spin), -math.sin(spin), 0], [math.sin(spin), math.cos(spin), 0], [0, 0, 1]])
    centre = near + np.array([rng.normal(0, 2), -rng.uniform(3, 7), rng.uniform(1, 4)])
    v, t, _ = ellipsoid(centre, np.array([4.2, 4.8, 1.6]), turn)
    vertices, triangles = [v], [t]
    for finger in range(4):
        base = centre + turn @ np.array([-2.7 + 1.8 * finger, 4.0, 0.0])
        bend = rng.uniform(0, 2.5)
        points = np.stack([base + turn @ np.array([0, 3.2 * k, -bend * k * k]) for k in np.linspace(0, 1, 6)])
        tv, tt, _ = tube(points, np.linspace(0.85, 0.7, 6))
        triangles.append(tt + sum(len(x) for x in vertices))
        vertices.append(tv)
    all_vertices = np.concatenate(vertices).astype(np.float32)
    all_triangles = np.concatenate(triangles)
    uv = np.zeros((len(all_triangles), 3, 2), np.float32)
    return Part(HAND, all_vertices, all_triangles, uv)


def _resample(polyline: np.ndarray, step: float) -> np.ndarray:
    lengths = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    total = np.concatenate([[0], np.cumsum(lengths)])
    samples = np.linspace(0, total[-1], max(3, int(total[-1] / step) + 1))
    return np.stack([np.interp(samples, total, polyline[:, k]) for k in range(3)], 1)
