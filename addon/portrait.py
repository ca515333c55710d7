"""The relightable portrait: a camera-facing card with the photo's albedo (the photo itself when
it has none) as base colour and the estimated normals wired in, a camera that frames it and a key
light.

It is lit as a render lights it, so that nothing but the scene's lights brightens the face: the
card has no specular layer (the photo, and an albedo fitted to it, already hold the photo's own
highlights; a second one reflected the grey world over the whole card and turned the black
turtleneck milky grey: 7/255 in the photo, 40-55 rendered) and the scene shows colours with the
Standard view transform (AgX, Blender's default, tone-maps the photo's colours flatter still).

The card lies in the XY plane facing +Z with U along +X and V along +Y, and the camera looks down
-Z: the card's tangent frame is then the camera's (x right, y up, z toward the camera), the very
space the estimator's normals are in, so the map plugs into a tangent-space Normal Map node as it is.
"""
from __future__ import annotations

import bpy
from mathutils import Vector

from . import materials

KEY_LIGHT = {"LEFT": (-0.75, 0.25, 0.6), "RIGHT": (0.75, 0.25, 0.6), "FRONT": (0.0, 0.3, 1.0)}


def build(photo: bpy.types.Image, normal_image: bpy.types.Image, *, light: str = "LEFT",
          scene: bpy.types.Scene | None = None, albedo: bpy.types.Image | None = None) -> dict:
    """Create (or update) the portrait objects for a photo in their own collection; the base colour
    is `albedo` when given, else the photo."""
    scene = scene or bpy.context.scene
    name = f"Face Portrait {photo.name}"
    collection = bpy.data.collections.get(name) or bpy.data.collections.new(name)
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)

    width, height = photo.size
    aspect = width / height if height else 1.0
    card = _card(f"{name} Card", aspect, collection)
    # Beside what the scene holds (the default cube sits at the origin), and casting no shadow:
    # a flat card shadowing itself through its normal map is EEVEE's dark speckle on the face.
    card.location = (_free_x(scene, collection) + aspect, 0.0, 0.0)
    card.visible_shadow = False
    material = bpy.data.materials.get(f"{name} Material") or bpy.data.materials.new(f"{name} Material")
    material.use_nodes = True
    if card.data.materials:
        card.data.materials[0] = material
    else:
        card.data.materials.append(material)
    materials.apply_base_colour(material, albedo or photo)
    normal_map = materials.apply_normal_map(material, normal_image)
    normal_map.uv_map = card.data.uv_layers[0].name
    bsdf = materials.principled(material.node_tree)
    assert bsdf is not None
    bsdf.inputs["Roughness"].default_value = 0.55
    bsdf.inputs["Specular IOR Level" if "Specular IOR Level" in bsdf.inputs else "Specular"].default_value = 0.0
    scene.view_settings.view_transform = "Standard"

    camera = _object(f"{name} Camera", bpy.data.cameras, collection)
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 2.0 * max(aspect, 1.0)
    camera.location, camera.rotation_euler = (card.location.x, 0.0, 5.0), (0.0, 0.0, 0.0)
    scene.camera = camera
    scene.render.resolution_x = 512 if aspect >= 1 else round(512 * aspect)
    scene.render.resolution_y = round(512 / aspect) if aspect >= 1 else 512

    if scene.world is None:   # an empty scene renders unlit sides pitch black: add soft fill
        world = bpy.data.worlds.get("Face Portrait Fill") or bpy.data.worlds.new("Face Portrait Fill")
        world.color = (0.25, 0.25, 0.25)
        world.use_nodes = True
        background = world.node_tree.nodes.get("Background")
        if background is not None:
            background.inputs["Color"].default_value = (0.5, 0.5, 0.5, 1.0)
            background.inputs["Strength"].default_value = 0.8
        scene.world = world

    key = _object(f"{name} Key Light", bpy.data.lights, collection, light_type="SUN")
    key.data.energy = 3.0
    key.data.angle = 0.05
    aim_light(key, KEY_LIGHT[light])
    return {"collection": collection, "card": card, "material": material, "camera": camera, "light": key}


def _free_x(scene: bpy.types.Scene, own: bpy.types.Collection) -> float:
    """An x beyond every other visible object's bounds (0 in an empty scene)."""
    right = None
    for obj in scene.objects:
        if obj.type != "MESH" or obj.name in own.objects or not obj.visible_get():
            continue
        x = max((obj.matrix_world @ Vector(corner)).x for corner in obj.bound_box)
        right = x if right is None else max(right, x)
    return 0.0 if right is None else right + 0.5


def aim_light(light: bpy.types.Object, direction) -> None:
    """Point a sun so that its light arrives from `direction` (toward the light, world space)."""
    light.rotation_euler = Vector(direction).normalized().to_track_quat("Z", "Y").to_euler()


def _card(name: str, aspect: float, collection) -> bpy.types.Object:
    mesh = bpy.data.meshes.get(name)
    if mesh is None:
        mesh = bpy.data.meshes.new(name)
        # half-height 1, half-width the photo's aspect ratio
        mesh.from_pydata([(-aspect, -1, 0), (aspect, -1, 0), (aspect, 1, 0), (-aspect, 1, 0)], [],
                         [(0, 1, 2, 3)])
        uv = mesh.uv_layers.new(name="UVMap")
        for loop, coords in zip(mesh.loops, ((0, 0), (1, 0), (1, 1), (0, 1))):
            uv.data[loop.index].uv = coords
    return _object(name, None, collection, data=mesh)


def _object(name, data_collection, collection, *, data=None, light_type=None) -> bpy.types.Object:
    obj = bpy.data.objects.get(name)
    if obj is None:
        if data is None:
            data = (data_collection.new(name, light_type) if light_type else data_collection.new(name))
        obj = bpy.data.objects.new(name, data)
    if obj.name not in collection.objects:
        collection.objects.link(obj)
    return obj
