"""A small Python helper for scripts and batch pipelines (background Blender or the bpy module).

    from bl_ext.user_default.face_normals import api      # the installed extension's package
    normal = api.estimate("/photos/anna.jpg")              # -> bpy Image "<stem>_normal"
    api.relightable_portrait("anna.jpg", light="RIGHT")
    api.relit("anna.jpg", [((-1, 0.3, 0.6), (1, 0.9, 0.8), 1.2)])   # -> "<stem>_relit" image
    api.project_onto_mesh(head, [("front.jpg", "Camera Front"), ("left.jpg", "Camera Left")])
    api.batch("/photos", save="BESIDE")                   # every photo of a folder

Each call runs the add-on's operators, so scripts and the UI do exactly the same thing; failures
raise `FaceNormalsError` with the operator's report."""
from __future__ import annotations

import os

import bpy

from . import images
from .core.files import is_photo


class FaceNormalsError(RuntimeError):
    pass


def _run(operator, **properties) -> None:
    try:
        result = operator(**properties)
    except RuntimeError as error:   # bpy turns an operator's ERROR report into RuntimeError
        raise FaceNormalsError(str(error).replace("Error: ", "").strip()) from None
    if "FINISHED" not in result:
        raise FaceNormalsError(f"{operator.idname_py()} did not finish: {result}")


def load(path: str) -> bpy.types.Image:
    return bpy.data.images.load(os.path.abspath(path), check_existing=True)


def _image(photo: str | bpy.types.Image) -> bpy.types.Image:
    """An Image, the image of that name, or the file at that path (loaded once)."""
    if isinstance(photo, str):
        return bpy.data.images[photo] if photo in bpy.data.images else load(photo)
    return photo


def estimate(photo: str | bpy.types.Image, *, detect: bool = True, save: str = "PACK") -> bpy.types.Image:
    """Estimate the normal map of a photo (a path or an Image); returns the '<stem>_normal' image."""
    image = load(photo) if isinstance(photo, str) else photo
    _run(bpy.ops.face_normals.estimate, source="ACTIVE", image_name=image.name, detect=detect,
         save_mode=save)
    return bpy.data.images[images.derived_name(image.name, "normal")]


def apply_to_material(material: bpy.types.Material, normal: bpy.types.Image, strength: float = 1.0) -> None:
    _run(bpy.ops.face_normals.apply_to_material, image_name=normal.name, material_name=material.name,
         strength=strength)


def relightable_portrait(photo: str | bpy.types.Image, *, light: str = "LEFT") -> bpy.types.Collection:
    image = _image(photo)
    _run(bpy.ops.face_normals.relightable_portrait, image_name=image.name, light=light)
    return bpy.data.collections[f"Face Portrait {image.name}"]


def relit(photo: str | bpy.types.Image, lights, **settings) -> bpy.types.Image:
    """Bake the photo relit into '<stem>_relit'.  lights: up to four (direction, colour, intensity);
    settings: any of the Relight panel's (specular=0.3, exposure=0.5, ...).  The scene's relight
    settings are set to these, as if made in the panel."""
    image = _image(photo)
    scene_settings = bpy.context.scene.face_normals_relight
    scene_settings.lights.clear()
    for direction, colour, intensity in lights:
        light = scene_settings.lights.add()
        light.direction, light.colour, light.intensity = direction, colour, intensity
    for name, value in settings.items():
        setattr(scene_settings, name, value)
    _run(bpy.ops.face_normals.relight_bake, image_name=image.name)
    return bpy.data.images[images.derived_name(image.name, "relit")]


def project_onto_mesh(obj: bpy.types.Object, views, *, resolution: int = 1024, blend: str = "FACING",
                      colour: bool = False, strength: float = 1.0) -> bpy.types.Image:
    """Project photos' normals (estimated first where missing) onto a mesh's own UV normal map and
    wire it into its material (with their heights as its displacement, when every photo has one).
    views: (photo path, Image or name, camera object or name) pairs.
    Returns the '<object>_projected_normal' image."""
    pairs = []
    for photo, camera in views:
        image = _image(photo)
        camera_name = camera if isinstance(camera, str) else camera.name
        pairs.append({"name": f"{image.name} | {camera_name}", "photo": image.name, "camera": camera_name})
    _run(bpy.ops.face_normals.project_normals, object_name=obj.name, views=pairs, resolution=resolution,
         blend=blend, colour=colour, strength=strength)
    return bpy.data.images[f"{obj.name}_projected_normal"]


def batch(folder: str, *, detect: bool = True, save: str = "BESIDE", portraits: bool = False) -> dict:
    """Every photo directly in a folder: {file name: normal Image, or the error message}."""
    done = {}
    for name in sorted(os.listdir(folder)):
        if not is_photo(name):
            continue
        try:
            done[name] = estimate(os.path.join(folder, name), detect=detect, save=save)
            if portraits:
                relightable_portrait(name)
        except FaceNormalsError as error:
            done[name] = str(error)
    return done
