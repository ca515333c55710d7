"""The relighting: its accuracy against ground truth (`python -m backend.benchmarks.relight --data
FACEKIT [--count 24]`: relight_accuracy.py, synthetic test people under two lights, and the height
against their depth) or, without --data, the preview's speed (`[--size 1024]`).

Speed:

Installs the built extension into headless Blender (the bpy module), initialises its gpu module with
a tiny render, and prints: frames per second of the interactive preview (the GLSL drawing the relit
photo at size^2, one light moving every frame, each frame waited for), the full-size read-back a
bake does, texture upload for a new photo, and the numpy reference's time for the same image.
On a machine without a GPU, Blender's gpu module runs on Mesa's llvmpipe (software).
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(action, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def initialise_gpu(bpy) -> None:
    """Blender's gpu module works in background only after a render (platform notes)."""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.render.filepath = str(Path(tempfile.mkdtemp()) / "init.png")
    bpy.ops.object.camera_add()
    scene.camera = bpy.context.object
    bpy.ops.render.render(write_still=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None,
                        help="pixels a side (speed: 1024; accuracy: the renders, 256)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--data", help="the ICT-FaceKit folder: measure accuracy instead of speed")
    parser.add_argument("--count", type=int, default=24, help="accuracy: test people")
    parser.add_argument("--weights", help="accuracy: normal-estimation weights (default: the shipped)")
    args = parser.parse_args()
    if args.data:
        from .relight_accuracy import run, table
        print(table(run(args.data, args.count, args.size or 256, args.weights)))
        return
    args.size = args.size or 1024

    from skimage import data
    from skimage.transform import resize

    from ..demo import blender_with_extension, build_extension
    bpy, _api = blender_with_extension(build_extension())
    initialise_gpu(bpy)
    import gpu
    from bl_ext.user_default.face_normals import relight_gpu
    from bl_ext.user_default.face_normals.shaders import relight as model

    size = args.size
    photo = resize(data.astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size * 2 - 1
    normals = np.dstack([x, -y, np.sqrt(np.clip(1.5 - x * x - y * y, 0.1, None))])
    normal_map = (normals / np.linalg.norm(normals, axis=-1, keepdims=True) * 0.5 + 0.5).astype(np.float32)
    mask = np.ones((size, size), np.float32)
    lighting = model.Lighting([model.Light((-0.6, 0.4, 0.7)), model.Light((0.8, 0.1, 0.4), (0.3, 0.4, 1.0), 0.5)],
                              specular=0.2)

    upload = timed(lambda: relight_gpu.RelitImage(photo, normal_map, mask), 3)
    relit = relight_gpu.RelitImage(photo, normal_map, mask)
    relight_gpu.shader()        # compile outside the timings
    offscreen = gpu.types.GPUOffScreen(size, size, format="RGBA8")
    frame = 0

    def draw_frame():
        nonlocal frame
        frame += 1
        angle = frame * 0.2
        lighting.lights[0].direction = (math.cos(angle), math.sin(angle), 0.6)
        with offscreen.bind():
            gpu.state.viewport_set(0, 0, size, size)
            relit.draw(lighting)
            gpu.state.active_framebuffer_get().read_color(0, 0, 1, 1, 4, 0, "UBYTE")   # wait for the frame

    draw_frame()
    per_frame = timed(draw_frame, args.frames)
    readback = timed(lambda: relit.render(lighting), 3)
    reference = timed(lambda: model.relight(photo, normal_map, lighting, mask), 3)
    offscreen.free()

    print(f"relighting preview at {size}x{size}, GPU: {gpu.platform.renderer_get()} ({gpu.platform.version_get()})")
    print(f"{'what':<44}{'ms':>9}{'per second':>12}")
    for label, seconds in (("preview frame (draw, waited for)", per_frame),
                           ("bake on the GPU (draw + float read-back)", readback),
                           ("texture upload for a new photo", upload),
                           ("numpy reference (bake in background)", reference)):
        print(f"{label:<44}{seconds * 1000:>9.1f}{1 / seconds:>12.1f}")


if __name__ == "__main__":
    main()
