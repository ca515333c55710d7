"""The numpy half of projecting photos onto a mesh's UVs (projection.py reads the mesh and the
camera out of Blender and hands them here): which texels a UV layout covers, what the mesh is
at each, how one photo's camera-space normals land in each texel's tangent frame and with what
weight, how several photos blend (their heights first aligned to each other), and growing the
result past UV seams.  Nothing here imports
Blender, so all of it is tested without Blender."""
from __future__ import annotations

import dataclasses

import numpy as np

FACING_FADE = (0.2, 0.45)      # cosines between the normal and the view: no weight below, full above
MARGIN = 4                     # texels the result is grown past UV island edges (filtering at seams)
FLAT = np.array([0.0, 0.0, 1.0], np.float32)


@dataclasses.dataclass
class Surface:
    """Per-texel samples of a mesh over its UV layout (object space), the same for every camera;
    `covered` marks the texels inside some UV triangle, the other arrays hold values for those
    texels only."""
    covered: np.ndarray      # (R, R) bool, row 0 = top of the image (v = 1)
    position: np.ndarray     # (K, 3)
    normal: np.ndarray       # (K, 3) unit
    tangent: np.ndarray      # (K, 3)
    bitangent: np.ndarray    # (K, 3): sign * normal x tangent, as the Normal Map node builds it
    corners: np.ndarray      # (K, 3) the mesh corners of each texel's triangle ...
    barycentric: np.ndarray  # (K, 3) ... and the texel's weights on them
    corner_position: np.ndarray  # (L, 3) every mesh corner (visibility is tested at corners)


@dataclasses.dataclass
class Projection:
    """One photo's contribution: tangent-space normals (R, R, 3) and their weight (R, R)."""
    normals: np.ndarray
    weight: np.ndarray
    colour: np.ndarray | None = None    # (R, R, 3) the photo's pixels, when asked for
    height: np.ndarray | None = None    # (R, R) the photo's height in object units, when asked for


def rasterise_uv(uv: np.ndarray, corners: np.ndarray, size: int, chunk: int = 1 << 22):
    """Texels (centres) of a size^2 image inside each UV triangle: (texel row, texel column,
    triangle index, barycentric weights (K, 3)).  Rows run top-down (v = 1 is row 0)."""
    tri_uv = uv[corners] * size                                   # (T, 3, 2) in texel units
    lo = np.clip(np.floor(tri_uv.min(1) - 0.5), 0, size - 1).astype(np.int64)
    hi = np.clip(np.ceil(tri_uv.max(1) - 0.5), 0, size - 1).astype(np.int64)
    widths, heights = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = widths * heights
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    usable = np.abs(area) > 1e-12
    found = []
    ends = np.cumsum(counts)
    start_tri = 0
    while start_tri < len(counts):     # in chunks of about `chunk` candidate texels
        stop_tri = int(np.searchsorted(ends, (ends[start_tri - 1] if start_tri else 0) + chunk)) + 1
        tris = np.arange(start_tri, min(stop_tri, len(counts)))
        tris = tris[usable[tris]]
        start_tri = min(stop_tri, len(counts))
        if len(tris) == 0:
            continue
        tri = np.repeat(tris, counts[tris])
        offsets = np.arange(len(tri)) - np.repeat(np.cumsum(counts[tris]) - counts[tris], counts[tris])
        x = lo[tri, 0] + offsets % widths[tri] + 0.5
        y = lo[tri, 1] + offsets // widths[tri] + 0.5
        ta, tb, tc = a[tri], b[tri], c[tri]
        w1 = ((x - ta[:, 0]) * (tc[:, 1] - ta[:, 1]) - (tc[:, 0] - ta[:, 0]) * (y - ta[:, 1])) / area[tri]
        w2 = ((tb[:, 0] - ta[:, 0]) * (y - ta[:, 1]) - (x - ta[:, 0]) * (tb[:, 1] - ta[:, 1])) / area[tri]
        w0 = 1 - w1 - w2
        inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        found.append((y[inside].astype(np.int64), x[inside].astype(np.int64), tri[inside],
                      np.stack([w0, w1, w2], 1)[inside]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
    v_index, u_index, tri, bary = (np.concatenate(parts) for parts in zip(*found))
    return size - 1 - v_index, u_index, tri, bary.astype(np.float32)


def surface(arrays: dict, size: int) -> Surface:
    """A mesh's triangulated corners (projection._mesh_arrays: corners (T, 3) indices into the
    per-corner arrays position, uv, normal, tangent (L, 3 or 2) and sign (L,)) sampled at the
    texels of a size^2 map of its UV layout."""
    corners = arrays["corners"]
    rows, cols, tri, bary = rasterise_uv(arrays["uv"], corners, size)
    # Each texel keeps one triangle (overlapping UVs: the last one drawn wins).
    flat_index = rows * size + cols
    _, keep = np.unique(flat_index[::-1], return_index=True)
    keep = len(flat_index) - 1 - keep
    rows, cols, tri, bary = rows[keep], cols[keep], tri[keep], bary[keep]

    def interpolate(name):
        return np.einsum("kc,kcd->kd", bary, arrays[name][corners[tri]])

    normal = interpolate("normal")
    normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(1e-12)
    tangent = interpolate("tangent")
    sign = np.where(np.einsum("kc,kc->k", bary, arrays["sign"][corners[tri]]) < 0, -1.0, 1.0)
    covered = np.zeros((size, size), bool)
    covered[rows, cols] = True
    return Surface(covered, interpolate("position"), normal, tangent, sign[:, None] * np.cross(normal, tangent),
                   corners[tri], bary, arrays["position"])


def project(surface: Surface, object_world: np.ndarray, camera_world: np.ndarray, lens: np.ndarray, *,
            orthographic: bool, corner_visible: np.ndarray, normal_map: np.ndarray, mask: np.ndarray | None,
            photo: np.ndarray | None = None, height: np.ndarray | None = None) -> Projection:
    """One photo onto the surface.  object_world, camera_world: the object's and the camera's 4x4
    matrices (to world space); lens: the camera's 4x4 projection at the photo's size (Blender's
    calc_matrix_camera); corner_visible (L,): 1 where a mesh corner sees the camera unhidden.
    normal_map: (H, W, 3) camera-space unit normals of the photo, top row first (OpenGL
    convention: +x right, +y up, +z toward the camera); mask (H, W) in [0, 1] or None; height
    (H, W) toward the camera in fractions of the photo's height (images.HEIGHT_RANGE's unit)."""
    rows, width = normal_map.shape[:2]
    world = np.asarray(object_world, np.float32)
    view = np.linalg.inv(np.asarray(camera_world, np.float64)).astype(np.float32)
    lens = np.asarray(lens, np.float32)
    camera_axes = np.asarray(camera_world, np.float64)[:3, :3]
    camera_rotation = (camera_axes / np.linalg.norm(camera_axes, axis=0)).astype(np.float32)

    position = surface.position @ world[:3, :3].T + world[:3, 3]
    in_camera = position @ view[:3, :3].T + view[:3, 3]
    clip = in_camera @ lens[:3, :3].T + lens[:3, 3]
    w = in_camera @ lens[3, :3] + lens[3, 3]
    ndc = clip[:, :2] / np.where(np.abs(w) < 1e-12, 1e-12, w)[:, None]
    px = (ndc[:, 0] + 1) / 2 * width - 0.5            # photo pixel coordinates (centres at integers)
    py = (1 - ndc[:, 1]) / 2 * rows - 0.5
    in_frame = (w > 0) & (np.abs(ndc) <= 1).all(1)

    # Facing: the mesh normal (world) against the direction to the camera.
    normal_world: np.ndarray = surface.normal @ np.linalg.inv(world[:3, :3])
    normal_world /= np.linalg.norm(normal_world, axis=1, keepdims=True).clip(1e-12)
    if orthographic:
        to_camera = np.broadcast_to(camera_rotation[:, 2], position.shape)
    else:
        to_camera = np.asarray(camera_world, np.float32)[:3, 3] - position
        to_camera = to_camera / np.linalg.norm(to_camera, axis=1, keepdims=True).clip(1e-12)
    facing = np.einsum("kd,kd->k", normal_world, to_camera)
    low, high = FACING_FADE
    facing_weight = np.clip((facing - low) / (high - low), 0, 1)
    facing_weight = facing_weight * facing_weight * (3 - 2 * facing_weight)    # smoothstep

    visible = np.einsum("kc,kc->k", surface.barycentric, corner_visible[surface.corners])
    sampled = bilinear(normal_map, px, py)
    weight = facing_weight * visible * in_frame
    if mask is not None:
        weight *= bilinear(mask[..., None], px, py)[:, 0]

    # Camera space -> world (the camera's own rotation) -> object -> the texel's tangent frame.
    target_world = sampled @ camera_rotation.T
    target_object = target_world @ world[:3, :3]                 # normals: inverse-transpose
    # Solve x T + y B + z N = target (Cramer's rule: ~10x faster than a batched np.linalg.solve).
    t, b, n = surface.tangent, surface.bitangent, surface.normal
    b_cross_n = np.cross(b, n)
    determinant = np.einsum("kd,kd->k", t, b_cross_n)
    usable = np.abs(determinant) > 1e-8
    coefficients = np.stack([np.einsum("kd,kd->k", target_object, b_cross_n),
                             np.einsum("kd,kd->k", t, np.cross(target_object, n)),
                             np.einsum("kd,kd->k", t, np.cross(b, target_object))], 1)
    coefficients /= np.where(usable, determinant, 1.0)[:, None]
    coefficients[~usable] = FLAT
    coefficients /= np.linalg.norm(coefficients, axis=1, keepdims=True).clip(1e-12)
    weight = np.where(usable & (coefficients[:, 2] > 0), weight, 0)

    size = surface.covered.shape[0]
    normals = np.tile(FLAT, (size, size, 1))
    weights = np.zeros((size, size), np.float32)
    normals[surface.covered] = coefficients
    weights[surface.covered] = weight
    colour = None
    if photo is not None:
        colour = np.zeros((size, size, 3), np.float32)
        colour[surface.covered] = bilinear(photo, px, py)
    relief = None
    if height is not None:
        # The photo's height spans 2 / lens[1, 1] camera units at distance 1 (orthographic: at any
        # distance); then into world units (the camera's scale) and the object's (its scale).
        depth = np.ones_like(w) if orthographic else np.abs(in_camera[:, 2])
        camera_scale = float(np.linalg.norm(camera_axes, axis=0).mean())
        object_scale = float(np.cbrt(abs(np.linalg.det(world[:3, :3].astype(np.float64)))))
        units = 2 * depth / lens[1, 1] * camera_scale / max(object_scale, 1e-12)
        relief = np.zeros((size, size), np.float32)
        relief[surface.covered] = bilinear(height[..., None], px, py)[:, 0] * units
    return Projection(normals, weights, colour, relief)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """image (H, W, C) sampled at pixel coordinates x, y (K,) -> (K, C), float32."""
    height, width, channels = image.shape
    flat = np.ascontiguousarray(image, np.float32).reshape(-1, channels)
    x = np.clip(x, 0, width - 1).astype(np.float32)
    y = np.clip(y, 0, height - 1).astype(np.float32)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    def at(rows, cols):              # np.take: several times faster than fancy indexing here
        return np.take(flat, rows * width + cols, axis=0)

    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def blend_weights(projections: list[Projection], mode: str = "FACING") -> list[np.ndarray]:
    """Each photo's share of every texel (R, R), before normalising.
    FACING: its own weight, how squarely it sees the texel.
    FILL: only what the earlier photos left of a full weight."""
    total = np.zeros_like(projections[0].weight)
    weights = []
    for projection in projections:
        weight = projection.weight * (1 - np.clip(total, 0, 1)) if mode == "FILL" else projection.weight
        weights.append(weight)
        total = total + weight
    return weights


def combine(projections: list[Projection], mode: str = "FACING") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Several photos of one asset -> (normals (R, R, 3) unit, coverage (R, R), colour or None),
    blended by `blend_weights`."""
    size = projections[0].weight.shape[0]
    total = np.zeros((size, size), np.float32)
    direction = np.zeros((size, size, 3), np.float32)
    colour = np.zeros((size, size, 3), np.float32) if projections[0].colour is not None else None
    for projection, weight in zip(projections, blend_weights(projections, mode)):
        direction += weight[..., None] * projection.normals
        if colour is not None:
            colour += weight[..., None] * projection.colour
        total += weight
    coverage = np.clip(total, 0, 1)
    share = np.where(total > 0, coverage / np.maximum(total, 1e-12), 0)[..., None]
    blended = direction * share + (1 - coverage[..., None]) * FLAT
    blended /= np.linalg.norm(blended, axis=-1, keepdims=True).clip(1e-12)
    if colour is not None:
        colour = colour / np.maximum(total, 1e-12)[..., None]
    return blended, coverage, colour


def height_offsets(projections: list[Projection]) -> list[float]:
    """What to add to each photo's height so that the photos agree where they overlap: each
    photo's height is relative (integrated from its own normals, its zero anywhere), so the first
    stays as it is and each later one moves by the median difference between it and the photos
    before it, over the texels both see.  A photo that overlaps none of them keeps its own zero."""
    summed = np.zeros_like(projections[0].weight)
    total = np.zeros_like(summed)
    offsets = []
    for projection in projections:
        assert projection.height is not None
        both = (projection.weight > 0) & (total > 0)
        offset = float(np.median(summed[both] / total[both] - projection.height[both])) if both.any() else 0.0
        offsets.append(offset)
        summed += projection.weight * (projection.height + offset)
        total += projection.weight
    return offsets


def combine_heights(projections: list[Projection], mode: str = "FACING") -> np.ndarray:
    """Several photos' heights (object units) -> one displacement (R, R): aligned by
    `height_offsets`, blended by `blend_weights`, then 0 where the photos fade out (the median of
    the texels they see only in part, else of all they see) and faded to 0 by the coverage, so
    the relief rises from the mesh without a step where no photo sees it."""
    offsets = height_offsets(projections)
    total = np.zeros_like(projections[0].weight)
    summed = np.zeros_like(total)
    for projection, weight, offset in zip(projections, blend_weights(projections, mode), offsets):
        assert projection.height is not None
        summed += weight * (projection.height + offset)
        total += weight
    seen = total > 0
    if not seen.any():
        return np.zeros_like(total)
    blended = summed / np.where(seen, total, 1)
    coverage = np.clip(total, 0, 1)
    edge = seen & (coverage < 1)
    base = float(np.median(blended[edge if edge.any() else seen]))
    return np.where(seen, (blended - base) * coverage, 0).astype(np.float32)


def grow(values: np.ndarray, covered: np.ndarray, steps: int = MARGIN) -> np.ndarray:
    """Extend values past the covered texels by `steps` rings (the average of covered neighbours),
    so that texture filtering at UV seams does not mix in the background."""
    values, covered = values.copy(), covered.copy()
    for _ in range(steps):
        total = np.zeros_like(values)
        count = np.zeros(covered.shape, np.float32)
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            shifted = np.roll(covered, (dy, dx), (0, 1))
            total += np.roll(values, (dy, dx), (0, 1)) * shifted[..., None]
            count += shifted
        new = ~covered & (count > 0)
        values[new] = total[new] / count[new][:, None]
        covered |= new
    return values
