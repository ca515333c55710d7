"""Run by test_oldest_and_newest_blender_... inside another Blender (bpy 4.2 LTS or 5.2 in its own
venv, without pyzmq: the extension's bundled wheel must provide it).  argv: ZIP ADDRESS PHOTO OUT_DIR"""
import os
import sys
import tempfile

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp()
import bpy  # noqa: E402

package, address, photo, out = sys.argv[1:5]
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=package, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
from bl_ext.user_default.face_normals import api, preferences  # noqa: E402

prefs = preferences.get()
prefs.address, prefs.auto_start, prefs.timeout = address, False, 10.0
normal = api.estimate(photo)
collection = api.relightable_portrait(os.path.basename(photo), light="RIGHT")
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 4
scene.render.resolution_percentage = 25
scene.render.filepath = os.path.join(out, "render.png")
bpy.ops.render.render(write_still=True)
import numpy as np  # noqa: E402
import zmq  # noqa: E402
from bl_ext.user_default.face_normals import relight, relight_gpu  # noqa: E402

# The relighting GLSL compiles and agrees with its reference here too (a Workbench render
# initialises the gpu module; Cycles does not).
scene.render.engine = "BLENDER_WORKBENCH"
bpy.ops.render.render(write_still=True)
settings = scene.face_normals_relight
pixels, normal_map, mask = relight.inputs(bpy.data.images[os.path.basename(photo)], settings)
on_gpu = relight_gpu.RelitImage(pixels, normal_map, mask).render(relight.lighting(settings))
reference = relight.model.relight(pixels, normal_map, relight.lighting(settings), mask)
print("RELIGHT", float(np.mean(np.abs(on_gpu - reference) * 255 <= 2)))

# Projection onto a mesh's UVs (MikkTSpace tangents, BVH visibility) works here too.
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.2)
sphere = bpy.context.object
bpy.ops.object.camera_add(location=(0, -1.5, 0), rotation=(1.5708, 0, 0))
projected = api.project_onto_mesh(sphere, [(os.path.basename(photo), bpy.context.object)], resolution=128)
print("PROJECTED", projected.name, tuple(projected.size))

print("BLENDER", bpy.app.version_string, "ZMQ", zmq.__file__)
print("RESULT", normal.name, tuple(normal.size), normal.colorspace_settings.name, len(collection.objects))
from bl_ext.user_default.face_normals.link import LINK  # noqa: E402

LINK.close()
