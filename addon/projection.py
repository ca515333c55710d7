"""Project a photo's camera-space normals through its camera onto a mesh, into the mesh's own UV
space as a tangent-space normal map (the frame Blender's Normal Map node decodes with), and its
colours and height beside it.  The estimator's maps are in view space (each face's normals
relative to the line of sight to it); `view_to_camera` turns them into the camera's space first.

Done in numpy (texels.py) over a rasterisation of the mesh's UV layout, not with a Cycles bake: during a bake
there is no view camera (platform notes), and numpy gives direct control of what counts as seen.
For every texel: where it lies on the mesh (position, smooth normal, MikkTSpace tangent frame),
where that point lands in the photo, and how much the photo may say about it (`weight`): the point
must be in front of the camera and inside its frame, face the camera (fading out between
texels.FACING_FADE cosines: a soft seam, never frontal detail on the side of a head), not be hidden behind
the mesh itself (rays cast from its corners), and be inside the photo's face mask.  Where the
weight is 0 the map is flat (0, 0, 1): the mesh's own normals."""
from __future__ import annotations

import bmesh
import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from . import texels
from .core import frames


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


def sample_surface(obj: bpy.types.Object, depsgraph, uv_name: str, size: int) -> texels.Surface:
    return texels.surface(_mesh_arrays(obj, depsgraph, uv_name), size)


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
    # Orthographic: past the mesh's bounds nothing can hide a corner (an infinite distance is no
    # good: the tree then reports a hit at float32's largest value, and nothing is seen).
    beyond = 2 * float(np.linalg.norm(np.ptp(unique, axis=0))) + 1.0
    for i, point in enumerate(unique):
        point = Vector(point)
        toward = -forward if orthographic else (eye - point)
        distance = beyond if orthographic else toward.length
        direction = toward.normalized()
        hit = tree.ray_cast(point + direction * epsilon * 10, direction, distance)
        if hit[0] is not None:
            seen[i] = 0.0
    return seen[inverse.ravel()]


def project(surface: texels.Surface, obj: bpy.types.Object, camera: bpy.types.Object, depsgraph,
            normal_map: np.ndarray, mask: np.ndarray | None, photo: np.ndarray | None = None,
            height: np.ndarray | None = None) -> texels.Projection:
    """normal_map: (H, W, 3) camera-space unit normals of the photo, top row first (OpenGL
    convention: +x right, +y up, +z toward the camera); mask (H, W) in [0, 1] or None; height
    (H, W) in fractions of the photo's height, or None."""
    rows, width = normal_map.shape[:2]
    return texels.project(surface, np.array(obj.matrix_world), np.array(camera.matrix_world),
                          np.array(camera.calc_matrix_camera(depsgraph, x=width, y=rows)),
                          orthographic=camera.data.type == "ORTHO",
                          corner_visible=_corner_visibility(obj, camera, depsgraph, surface.corner_position),
                          normal_map=normal_map, mask=mask, photo=photo, height=height)


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


