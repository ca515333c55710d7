"""Projecting a photo's normals onto a mesh's own UV normal map, in real headless Blender.

The stand-in for the estimator's output is a Cycles render of the asset's camera-space normals
with a known tangent-space normal (TRUE_TANGENT) applied through Blender's own Normal Map node; the
projection must bake that value back wherever the camera sees the surface, and flat elsewhere."""
import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow   # Blender (the bpy module) with the extension installed

TRUE_TANGENT = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])


def _look_at(bpy, name, location, target=(0, 0, 0)):
    from mathutils import Vector     # after bpy: the fixture sets Blender's user folder first
    data = bpy.data.cameras.new(name)
    data.lens = 70
    camera = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(camera)
    camera.location = location
    camera.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()
    return camera


def _sphere(bpy, name="Sphere", location=(0, 0, 0), radius=1.0):
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=radius, location=location)
    sphere = bpy.context.object
    sphere.name = name
    bpy.ops.object.shade_smooth()
    return sphere


def _render_camera_normals(bpy, camera, path, size=256):
    """The camera-space normals every mesh shows this camera, perturbed by TRUE_TANGENT through
    a Normal Map node, rendered with Cycles into `path` (EXR) and returned as (normals, mask)."""
    material = bpy.data.materials.new("camera normals")
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    normal_map = tree.nodes.new("ShaderNodeNormalMap")
    normal_map.inputs["Color"].default_value = (*(TRUE_TANGENT * 0.5 + 0.5), 1.0)
    to_camera = tree.nodes.new("ShaderNodeVectorTransform")
    to_camera.vector_type, to_camera.convert_from, to_camera.convert_to = "NORMAL", "WORLD", "CAMERA"
    encode = tree.nodes.new("ShaderNodeVectorMath")
    encode.operation = "MULTIPLY_ADD"
    encode.inputs[1].default_value = encode.inputs[2].default_value = (0.5, 0.5, 0.5)
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(normal_map.outputs["Normal"], to_camera.inputs["Vector"])
    tree.links.new(to_camera.outputs["Vector"], encode.inputs[0])
    tree.links.new(encode.outputs["Vector"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    saved = {}
    for obj in bpy.context.scene.objects:
        if obj.type == "MESH":
            saved[obj.name] = list(obj.data.materials)
            obj.data.materials.clear()
            obj.data.materials.append(material)
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    for name, materials in saved.items():
        mesh = bpy.data.objects[name].data
        mesh.materials.clear()
        for m in materials:
            mesh.materials.append(m)
    image = bpy.data.images.load(str(path))
    image.colorspace_settings.name = "Non-Color"
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(size, size, 4)[::-1]
    bpy.data.images.remove(image)
    normals = pixels[..., :3] * 2 - 1
    normals[..., 2] *= -1          # Cycles' camera space looks down +Z; the OpenGL convention's +Z faces the viewer
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)
    return normals, (pixels[..., 3] > 0.5).astype(np.float32)


def _as_estimated(bpy, photo_name, normals, mask):
    """Store a normal map and mask as the estimate operator would for `photo_name`."""
    size = normals.shape[0]
    stem = photo_name.rsplit(".", 1)[0]
    for name, rgb in ((photo_name, np.full((size, size, 3), 0.5)), (f"{stem}_normal", normals * 0.5 + 0.5),
                      (f"{stem}_mask", np.dstack([mask] * 3))):
        image = bpy.data.images.new(name, size, size, alpha=True, float_buffer=True)
        image.colorspace_settings.name = "Non-Color"
        rgba = np.dstack([rgb, np.ones((size, size))])[::-1]
        image.pixels.foreach_set(np.ascontiguousarray(rgba, np.float32).ravel())


def _baked(bpy, name):
    image = bpy.data.images[name]
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    normals = pixels.reshape(height, width, 4)[::-1, :, :3] * 2 - 1
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True).clip(1e-6)


def _degrees(a, b):
    return np.degrees(np.arccos(np.clip(np.einsum("...c,...c->...", a, b), -1, 1)))


def _surface_facing(addon, bpy, obj, camera, size):
    """Per covered texel: the world position and whether it faces the camera (from geometry alone)."""
    surface = addon.projection.sample_surface(obj, bpy.context.evaluated_depsgraph_get(), "UVMap", size)
    world = np.array(obj.matrix_world)
    position = surface.position @ world[:3, :3].T + world[:3, 3]
    to_camera = np.array(camera.location) - position
    return surface, np.einsum("kd,kd->k", surface.normal, to_camera) / np.linalg.norm(to_camera, axis=1)


def test_projection_bakes_back_the_known_tangent_normals_where_seen_and_flat_behind(clean_file, addon, tmp_path):
    bpy = clean_file
    sphere = _sphere(bpy)
    camera = _look_at(bpy, "Front", (0.6, -4.5, 0.8))
    normals, mask = _render_camera_normals(bpy, camera, tmp_path / "normals.exr")
    _as_estimated(bpy, "front.png", normals, mask)

    result = bpy.ops.face_normals.project_normals(object_name=sphere.name, image_name="front.png",
                                                  camera_name=camera.name, resolution=256)
    assert result == {"FINISHED"}
    baked = _baked(bpy, "Sphere_projected_normal")
    surface, facing = _surface_facing(addon, bpy, sphere, camera, 256)
    texels = baked[surface.covered]
    seen = facing > 0.6                       # squarely facing the camera (the fade ends at 0.45)
    assert seen.mean() > 0.05
    errors = _degrees(texels[seen], TRUE_TANGENT)
    assert np.median(errors) < 3, f"median {np.median(errors):.2f} deg"
    behind = facing < 0
    assert behind.mean() > 0.4
    assert np.allclose(texels[behind], [0, 0, 1], atol=1e-3)
    # Wired into the sphere's (new) material through its UV map.
    tree = sphere.active_material.node_tree
    normal_map = tree.nodes["Face Normals Map"]
    assert normal_map.uv_map == "UVMap" and normal_map.space == "TANGENT"
    assert tree.nodes["Face Normals Texture"].image.name == "Sphere_projected_normal"
    # A photo without an albedo (estimated before albedo) gives its own colours, as before.
    assert bpy.ops.face_normals.project_normals(object_name=sphere.name, image_name="front.png",
                                                camera_name=camera.name, resolution=64, colour=True) == {"FINISHED"}
    assert tree.nodes["Face Normals Photo"].image.name == "Sphere_projected_colour"
    assert "Sphere_projected_albedo" not in bpy.data.images
    assert tree.nodes["Face Normals Texture"].inputs["Vector"].links[0].from_node.uv_map == "UVMap"
    # Nor a height: none is baked and the displacement stays unwired.
    assert "Sphere_projected_height" not in bpy.data.images
    assert not sphere.active_material.node_tree.nodes["Material Output"].inputs["Displacement"].is_linked


def test_a_view_space_map_of_an_off_centre_face_is_turned_into_the_camera_space(clean_file, addon, tmp_path):
    """The estimator's maps are relative to the line of sight to each face (core/frames.py);
    the add-on keeps the crop centres on the normal image and turns the map into the camera's
    space before projecting.  The sphere sits ~12 degrees off the axis of a 35 mm camera."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    bpy = clean_file
    sphere = _sphere(bpy)
    camera = _look_at(bpy, "Aside", (0.6, -4.5, 0.8), target=(-0.4, 0, 0.9))
    camera.data.lens = 35
    normals, mask = _render_camera_normals(bpy, camera, tmp_path / "normals.exr")
    centre = camera.matrix_world.inverted() @ Vector((0, 0, 0))
    off_axis = np.degrees(np.arccos(-centre.normalized().z))
    assert 8 < off_axis < 16
    # In view space, as the estimator would give it for a face centred on the sphere.
    turn = addon.core.frames.turn_from_z(-np.array(centre.normalized()))
    in_view = normals @ turn
    u, v, _ = world_to_camera_view(bpy.context.scene, camera, Vector((0, 0, 0)))
    _as_estimated(bpy, "aside.png", in_view, mask)

    surface, facing = _surface_facing(addon, bpy, sphere, camera, 256)
    seen = facing > 0.6
    for centres, low, high in (([], 6, 30), ([(u, 1 - v)], 0, 3)):
        addon.images.remember_view_centres(bpy.data.images["aside_normal"], centres)
        assert bpy.ops.face_normals.project_normals(object_name=sphere.name, image_name="aside.png",
                                                    camera_name=camera.name, resolution=256) == {"FINISHED"}
        errors = _degrees(_baked(bpy, "Sphere_projected_normal")[surface.covered][seen], TRUE_TANGENT)
        assert low <= np.median(errors) < high, f"centres {centres}: median {np.median(errors):.2f} deg"


def test_surface_hidden_behind_another_part_of_the_mesh_stays_flat(clean_file, addon, tmp_path):
    bpy = clean_file
    back = _sphere(bpy, "Back")
    front = _sphere(bpy, "Front Ball", location=(0, -2.0, 0), radius=0.3)
    for obj, scale, offset in ((back, 0.7, 0.3), (front, 0.25, 0.0)):     # one UV layout, no overlaps
        uv = np.empty(len(obj.data.loops) * 2, np.float32)
        obj.data.uv_layers[0].data.foreach_get("uv", uv)
        obj.data.uv_layers[0].data.foreach_set("uv", uv * scale + offset)
    bpy.ops.object.select_all(action="DESELECT")
    back.select_set(True)
    front.select_set(True)
    bpy.context.view_layer.objects.active = back
    bpy.ops.object.join()
    camera = _look_at(bpy, "Cam", (0, -6, 0))
    normals, mask = _render_camera_normals(bpy, camera, tmp_path / "normals.exr")
    _as_estimated(bpy, "photo.png", normals, mask)
    assert bpy.ops.face_normals.project_normals(object_name=back.name, image_name="photo.png",
                                                camera_name=camera.name, resolution=256) == {"FINISHED"}
    surface, facing = _surface_facing(addon, bpy, back, camera, 256)
    baked = _baked(bpy, f"{back.name}_projected_normal")[surface.covered]
    world = np.array(back.matrix_world)
    position = surface.position @ world[:3, :3].T + world[:3, 3]
    # On the big sphere, facing the camera, right behind the small one: hidden.
    radial = np.hypot(position[:, 0], position[:, 2])      # from the camera's axis; its shadow reaches ~0.4
    on_big_ball = position[:, 1] > -1.2
    hidden = on_big_ball & (facing > 0.8) & (radial < 0.2)
    open_view = on_big_ball & (facing > 0.6) & (radial > 0.55)
    assert hidden.sum() > 20 and open_view.sum() > 20
    assert np.median(_degrees(baked[hidden], [0, 0, 1])) < 1
    assert np.median(_degrees(baked[open_view], TRUE_TANGENT)) < 3


def test_a_batch_of_two_views_covers_more_and_fill_keeps_the_first(clean_file, addon, tmp_path):
    bpy = clean_file
    sphere = _sphere(bpy)
    left = _look_at(bpy, "Left", (-3.5, -3.0, 0.3))
    right = _look_at(bpy, "Right", (3.5, -3.0, 0.3))
    for camera, photo in ((left, "left.png"), (right, "right.png")):
        normals, mask = _render_camera_normals(bpy, camera, tmp_path / f"{photo}.exr")
        _as_estimated(bpy, photo, normals, mask)
    from bl_ext.user_default.face_normals import api
    covered = {}
    for views in ([("left.png", "Left")], [("right.png", "Right")], [("left.png", "Left"), ("right.png", "Right")]):
        baked = _baked(bpy, api.project_onto_mesh(sphere, views, resolution=128).name)
        covered[len(views), views[0][0]] = _degrees(baked, [0, 0, 1]) > 5
    both = covered[2, "left.png"]
    assert both.sum() > 1.3 * max(covered[1, "left.png"].sum(), covered[1, "right.png"].sum())
    filled = _baked(bpy, api.project_onto_mesh(sphere, [("left.png", "Left"), ("right.png", "Right")],
                                               resolution=128, blend="FILL").name)
    assert ((_degrees(filled, [0, 0, 1]) > 5) == both).mean() > 0.98


def _sphere_heights(addon, bpy, photo, camera, size, *, offset=0.0, columns=slice(None)):
    """Store, as Estimate would, the height toward an orthographic camera on the sphere's axis of
    the unit sphere (plus `offset`, in photo heights: a height's zero is arbitrary), and keep the
    photo's mask to `columns`."""
    span = camera.data.ortho_scale
    centres = ((np.arange(size) + 0.5) / size - 0.5) * span
    x, y = np.meshgrid(centres, -centres)
    height = np.sqrt(np.clip(1 - x * x - y * y, 0, None)) + offset * span
    addon.images.store_assets(photo, albedo=None, height=height / span * size, light=None, photo_rows=size,
                              save_beside=None)
    mask = bpy.data.images[f"{photo.rsplit('.', 1)[0]}_mask"]
    pixels = np.empty(size * size * 4, np.float32)
    mask.pixels.foreach_get(pixels)
    pixels = pixels.reshape(size, size, 4)
    kept = np.zeros((size, size), bool)
    kept[:, columns] = True
    pixels[..., :3] *= kept[..., None]
    mask.pixels.foreach_set(pixels.ravel())


def _displacement(bpy, obj, surface):
    """The baked height at each covered texel, in the object's units, as the material's
    Displacement node reads it: (value - midlevel) * scale."""
    tree = obj.active_material.node_tree
    node = tree.nodes["Face Normals Displacement"]
    assert tree.nodes["Material Output"].inputs["Displacement"].links[0].from_node == node
    image = node.inputs["Height"].links[0].from_node.image
    assert image.name == f"{obj.name}_projected_height" and image.colorspace_settings.name == "Non-Color"
    assert image.is_float
    size = image.size[0]
    pixels = np.empty(size * size * 4, np.float32)
    image.pixels.foreach_get(pixels)
    value = pixels.reshape(size, size, 4)[::-1, :, 0][surface.covered]
    return (value - node.inputs["Midlevel"].default_value) * node.inputs["Scale"].default_value


def test_the_photos_heights_are_baked_aligned_into_the_displacement(clean_file, addon, tmp_path):
    """Two photos through one orthographic camera, each seeing one side of a unit sphere (with an
    overlap in the middle), the second's height 0.2 photo heights higher: the baked displacement
    is the sphere's own depth toward the camera, up to one constant, across both (no step where
    they meet), and 0 (the mesh as it is) behind the sphere."""
    bpy = clean_file
    sphere = _sphere(bpy)
    camera = _look_at(bpy, "Front", (0, -4.5, 0))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 2.4
    normals, mask = _render_camera_normals(bpy, camera, tmp_path / "normals.exr")
    for photo, offset, columns in (("left.png", 0.0, slice(0, 150)), ("right.png", 0.2, slice(106, None))):
        _as_estimated(bpy, photo, normals, mask)
        _sphere_heights(addon, bpy, photo, camera, 256, offset=offset, columns=columns)
    from bl_ext.user_default.face_normals import api
    api.project_onto_mesh(sphere, [("left.png", "Front"), ("right.png", "Front")], resolution=256)

    surface, facing = _surface_facing(addon, bpy, sphere, camera, 256)
    relief = _displacement(bpy, sphere, surface)
    depth = -surface.position[:, 1]                       # toward the camera: -y
    seen = facing > 0.6
    for side in (surface.position[:, 0] < -0.2, surface.position[:, 0] > 0.2):
        assert (seen & side).sum() > 200
    residual = relief[seen] - depth[seen]
    assert np.abs(residual - np.median(residual)).max() < 0.02, np.abs(residual - np.median(residual)).max()
    assert np.abs(relief[facing < -0.1]).max() < 1e-6


def test_without_a_uv_map_or_a_camera_it_is_a_clear_error(clean_file, addon):
    bpy = clean_file
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.object
    cube.data.uv_layers.remove(cube.data.uv_layers[0])
    with pytest.raises(RuntimeError, match="no UV map"):
        bpy.ops.face_normals.project_normals(object_name=cube.name, image_name="x")
    sphere = _sphere(bpy)
    bpy.data.images.new("photo.png", 8, 8)
    with pytest.raises(RuntimeError, match="no camera"):
        bpy.ops.face_normals.project_normals(object_name=sphere.name, image_name="photo.png")
    assert "Sphere_projected_normal" not in bpy.data.images


def test_a_real_photo_through_the_backend_onto_a_head_sized_sphere(clean_file, addon, backend, astronaut_path):
    """End to end: the photo behind the camera (the set-up button), normals estimated by the
    backend on the way, projected at 1024^2 with its colour (its speed: backend.benchmarks.projection)."""
    bpy = clean_file
    sphere = _sphere(bpy, "Head", radius=0.12)
    camera = _look_at(bpy, "Photo Camera", (0, -0.9, 0.05))
    bpy.context.scene.camera = camera
    photo = bpy.data.images.load(str(astronaut_path))
    assert bpy.ops.face_normals.camera_background(image_name=photo.name) == {"FINISHED"}
    assert camera.data.background_images[0].image == photo
    assert (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y) == tuple(photo.size)

    assert bpy.ops.face_normals.project_normals(object_name="Head", image_name=photo.name, resolution=1024,
                                                colour=True) == {"FINISHED"}
    normal = bpy.data.images["Head_projected_normal"]
    colour = bpy.data.images["Head_projected_albedo"]          # the estimate made an albedo: it goes on
    assert "Head_projected_colour" not in bpy.data.images and colour.is_float
    assert "Linear" in colour.colorspace_settings.name
    assert tuple(normal.size) == (1024, 1024) and normal.colorspace_settings.name == "Non-Color"
    tree = sphere.active_material.node_tree
    bsdf = tree.nodes["Principled BSDF"]
    assert bsdf.inputs["Base Color"].links[0].from_node.image == colour
    assert bsdf.inputs["Normal"].links[0].from_node.inputs["Color"].links[0].from_node.image == normal
    baked = _baked(bpy, normal.name)
    assert 0.01 < (_degrees(baked, [0, 0, 1]) > 2).mean() < 0.5     # the face-facing part only
    assert math.isclose(float(np.linalg.norm(baked, axis=-1).mean()), 1.0, abs_tol=1e-3)
    # The estimate made a height too: it goes into the displacement, in the head's units (some
    # relief, smaller than the head; the untrained test model's normals are nearly flat).
    relief = _displacement(bpy, sphere, addon.projection.sample_surface(
        sphere, bpy.context.evaluated_depsgraph_get(), "UVMap", 1024))
    assert 0 < float(np.ptp(relief)) < 0.24
