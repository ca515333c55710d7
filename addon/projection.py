"""Project a photo's camera-space normals through its camera onto a mesh, into the mesh's own UV
space as a tangent-space normal map (the frame Blender's Normal Map node decodes with).  The
estimator's maps are in view space (each face's normals relative to the line of sight to it);
`view_to_camera` turns them into the camera's space first.

Done in numpy over a rasterisation of the mesh's UV layout, not with a Cycles bake: during a bake
there is no view camera (platform notes), and numpy gives direct control of what counts as seen.
For every texel: where it lies on the mesh (position, smooth normal, MikkTSpace tangent frame),
where that point lands in the photo, and how much the photo may say about it (`weight`): the point
must be in front of the camera and inside its frame, face the camera (fading out between
FACING_FADE cosines: a soft seam, never frontal detail on the side of a head), not be hidden behind
the mesh itself (rays cast from its corners), and be inside the photo's face mask.  Where the
weight is 0 the map is flat (0, 0, 1): the mesh's own normals."""
from __future__ import annotations

import dataclasses

import bmesh
import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from .core import frames

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


def _mesh_arrays(obj: bpy.types.Object, depsgraph, uv_name: str) -> dict:
    """Triangulated corners of the evaluated mesh: positions, UVs, normals, tangents, signs."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = bpy.data.meshes.new_from_object(evaluated, depsgraph=depsgraph)
    try:
        if any(p.loop_total > 4 for p in mesh.polygons):   # MikkTSpace takes triangles and quads only
            work = bmesh.new()
            work.from_mesh(mesh)
            bmesh.ops.triangulate(work, faces=[f for f in work.faces if len(f.verts) > 4])
            work.to_mesh(mesh)
            work.free()
        if uv_name not in mesh.uv_layers:
            raise ValueError(f"'{obj.name}' has no UV map '{uv_name}'")
        mesh.calc_tangents(uvmap=uv_name)
        mesh.calc_loop_triangles()
        loops = len(mesh.loops)

        def per_loop(collection, name, width):
            values = np.empty(len(collection) * width, np.float32)
            collection.foreach_get(name, values)
            return values.reshape(-1, width) if width > 1 else values

        vertex_index = np.empty(loops, np.int32)
        mesh.loops.foreach_get("vertex_index", vertex_index)
        corners = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("loops", corners)
        return {"corners": corners.reshape(-1, 3),
                "position": per_loop(mesh.vertices, "co", 3)[vertex_index],
                "uv": per_loop(mesh.uv_layers[uv_name].data, "uv", 2),
                "normal": per_loop(mesh.loops, "normal", 3),
                "tangent": per_loop(mesh.loops, "tangent", 3),
                "sign": per_loop(mesh.loops, "bitangent_sign", 1)}
    finally:
        bpy.data.meshes.remove(mesh)


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


def sample_surface(obj: bpy.types.Object, depsgraph, uv_name: str, size: int) -> Surface:
    arrays = _mesh_arrays(obj, depsgraph, uv_name)
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


def _corner_visibility(obj, camera, depsgraph, positions: np.ndarray) -> np.ndarray:
    """1 where the straight line from a mesh corner to the camera leaves the mesh unhit."""
    evaluated = obj.evaluated_get(depsgraph)
    tree = BVHTree.FromObject(evaluated, depsgraph)
    to_object = obj.matrix_world.inverted()
    eye = to_object @ camera.matrix_world.translation
    forward = (to_object.to_3x3() @ (camera.matrix_world.to_3x3() @ Vector((0, 0, -1)))).normalized()
    orthographic = camera.data.type == "ORTHO"
    unique, inverse = np.unique(positions.round(6), axis=0, return_inverse=True)
    seen = np.ones(len(unique), np.float32)
    epsilon = 1e-4 * max(float(np.ptp(unique, axis=0).max()), 1e-6)
    for i, point in enumerate(unique):
        point = Vector(point)
        toward = -forward if orthographic else (eye - point)
        distance = toward.length if not orthographic else float("inf")
        direction = toward.normalized()
        hit = tree.ray_cast(point + direction * epsilon * 10, direction, distance)
        if hit[0] is not None:
            seen[i] = 0.0
    return seen[inverse.ravel()]


def project(surface: Surface, obj: bpy.types.Object, camera: bpy.types.Object, depsgraph,
            normal_map: np.ndarray, mask: np.ndarray | None, photo: np.ndarray | None = None) -> Projection:
    """normal_map: (H, W, 3) camera-space unit normals of the photo, top row first (OpenGL
    convention: +x right, +y up, +z toward the camera); mask (H, W) in [0, 1] or None."""
    height, width = normal_map.shape[:2]
    world = np.array(obj.matrix_world, np.float32)
    view = np.array(camera.matrix_world.inverted(), np.float32)
    lens = np.array(camera.calc_matrix_camera(depsgraph, x=width, y=height), np.float32)
    camera_rotation = np.array(camera.matrix_world.to_3x3().normalized(), np.float32)

    position = surface.position @ world[:3, :3].T + world[:3, 3]
    in_camera = position @ view[:3, :3].T + view[:3, 3]
    clip = in_camera @ lens[:3, :3].T + lens[:3, 3]
    w = in_camera @ lens[3, :3] + lens[3, 3]
    ndc = clip[:, :2] / np.where(np.abs(w) < 1e-12, 1e-12, w)[:, None]
    px = (ndc[:, 0] + 1) / 2 * width - 0.5            # photo pixel coordinates (centres at integers)
    py = (1 - ndc[:, 1]) / 2 * height - 0.5
    in_frame = (w > 0) & (np.abs(ndc) <= 1).all(1)

    # Facing: the mesh normal (world) against the direction to the camera.
    normal_world: np.ndarray = surface.normal @ np.linalg.inv(world[:3, :3])
    normal_world /= np.linalg.norm(normal_world, axis=1, keepdims=True).clip(1e-12)
    if camera.data.type == "ORTHO":
        to_camera = np.broadcast_to(camera_rotation[:, 2], position.shape)
    else:
        to_camera = np.array(camera.matrix_world.translation, np.float32) - position
        to_camera = to_camera / np.linalg.norm(to_camera, axis=1, keepdims=True).clip(1e-12)
    facing = np.einsum("kd,kd->k", normal_world, to_camera)
    low, high = FACING_FADE
    facing_weight = np.clip((facing - low) / (high - low), 0, 1)
    facing_weight = facing_weight * facing_weight * (3 - 2 * facing_weight)    # smoothstep

    corner_visible = _corner_visibility(obj, camera, depsgraph, surface.corner_position)
    visible = np.einsum("kc,kc->k", surface.barycentric, corner_visible[surface.corners])
    sampled = _bilinear(normal_map, px, py)
    weight = facing_weight * visible * in_frame
    if mask is not None:
        weight *= _bilinear(mask[..., None], px, py)[:, 0]

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
        colour[surface.covered] = _bilinear(photo, px, py)
    return Projection(normals, weights, colour)


def view_to_camera(normal_map: np.ndarray, centres: list[tuple[float, float]], camera: bpy.types.Object,
                   depsgraph) -> np.ndarray:
    """A map in view space (the estimator's frame: each face's normals relative to the line of
    sight to its crop's centre, given as fractions of the map's size) -> the camera's space, with
    the focal length and principal point of the camera's own projection at the map's size."""
    if not centres or camera.data.type == "ORTHO":      # orthographic: every line of sight is +z
        return normal_map
    height, width = normal_map.shape[:2]
    lens = np.array(camera.calc_matrix_camera(depsgraph, x=width, y=height))
    # ndc = (lens[0][0] x / -z - lens[0][2], lens[1][1] y / -z - lens[1][2]); pixels from the top left
    focal = lens[1, 1] * height / 2
    principal = ((1 - lens[0, 2]) * width / 2, (1 + lens[1, 2]) * height / 2)
    return frames.view_to_camera(normal_map, [(x * width, y * height) for x, y in centres], focal, principal)


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
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


def combine(projections: list[Projection], mode: str = "FACING") -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Several photos of one asset -> (normals (R, R, 3) unit, coverage (R, R), colour or None).
    FACING: a weighted blend, each photo weighted by how squarely it sees the texel.
    FILL: each later photo only where the earlier ones left weight to give."""
    size = projections[0].weight.shape[0]
    total = np.zeros((size, size), np.float32)
    direction = np.zeros((size, size, 3), np.float32)
    colour = np.zeros((size, size, 3), np.float32) if projections[0].colour is not None else None
    for projection in projections:
        weight = projection.weight * (1 - np.clip(total, 0, 1)) if mode == "FILL" else projection.weight
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
