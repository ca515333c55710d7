"""Speed of projecting a photo's normals onto a mesh: `python -m backend.benchmarks.projection`.

Installs the built extension into headless Blender (the bpy module), makes a head-sized UV sphere
(about the face count of a game head: --segments), a camera and a 1024^2 photo whose camera-space
normal map is the sphere's own, and times the Project Normals operator at several UV resolutions,
split into its steps (UV rasterisation, projection with visibility, the whole operator).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=128, help="the sphere's segments (rings: half)")
    parser.add_argument("--photo", type=int, default=1024)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[1024, 2048])
    args = parser.parse_args()

    from ..demo import blender_with_extension, build_extension
    bpy, _api = blender_with_extension(build_extension())
    from bl_ext.user_default.face_normals import projection
    from mathutils import Vector

    bpy.ops.mesh.primitive_uv_sphere_add(segments=args.segments, ring_count=args.segments // 2, radius=0.1)
    head = bpy.context.object
    bpy.ops.object.shade_smooth()
    bpy.ops.object.camera_add(location=(0, -0.6, 0))
    camera = bpy.context.object
    camera.rotation_euler = (-camera.location).to_track_quat("-Z", "Y").to_euler()
    bpy.context.scene.camera = camera

    size = args.photo
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size * 2 - 1
    normals = np.dstack([x, -y, np.sqrt(np.clip(1 - x * x - y * y, 0, None))]).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)
    for name, rgb in (("photo.png", np.full((size, size, 3), 0.5)), ("photo_normal", normals * 0.5 + 0.5)):
        image = bpy.data.images.new(name, size, size, alpha=True, float_buffer=True)
        image.pixels.foreach_set(np.dstack([rgb, np.ones((size, size))])[::-1].astype(np.float32).ravel())

    depsgraph = bpy.context.evaluated_depsgraph_get()
    print(f"UV sphere, {len(head.data.polygons):,} faces; photo {size}x{size}; one camera; "
          f"{Vector(camera.location).length:.1f} m away")
    print(f"{'UV resolution':<16}{'surface s':>11}{'project s':>11}{'operator s':>12}")
    for resolution in args.resolutions:
        start = time.perf_counter()
        surface = projection.sample_surface(head, depsgraph, "UVMap", resolution)
        sampled = time.perf_counter() - start
        start = time.perf_counter()
        projection.project(surface, head, camera, depsgraph, normals, None)
        projected = time.perf_counter() - start
        start = time.perf_counter()
        bpy.ops.face_normals.project_normals(object_name=head.name, image_name="photo.png",
                                             camera_name=camera.name, resolution=resolution, colour=True)
        whole = time.perf_counter() - start
        print(f"{resolution}x{resolution:<11}{sampled:>11.2f}{projected:>11.2f}{whole:>12.2f}")


if __name__ == "__main__":
    main()
