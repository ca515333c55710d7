"""Export a photo's maps as one multilayer OpenEXR (Image Editor): layers normal (raw vectors),
albedo (linear), height (photo pixels toward the camera) and mask, whichever Estimate made,
written by core/exr.py (Blender saves an image as one layer only)."""
from __future__ import annotations

import os

import bpy
import numpy as np
from bpy.props import StringProperty

from . import images
from .core.exr import write_multilayer

KINDS = ("normal", "albedo", "height", "mask")


def photo_stem(image: bpy.types.Image) -> str:
    """The photo's stem whether the photo or one of its maps is shown ('anna.jpg', 'anna_albedo' -> 'anna')."""
    stem = os.path.splitext(image.name)[0]
    for kind in KINDS:
        if stem.endswith(f"_{kind}") and image.name == images.derived_name(stem[:-len(kind) - 1], kind):
            return stem[:-len(kind) - 1]
    return stem


def default_path(photo: bpy.types.Image, stem: str) -> str:
    """<stem>.exr beside the photo's file, else beside the .blend, else in the home folder."""
    source = bpy.path.abspath(photo.filepath) if photo.filepath else ""
    folder = (os.path.dirname(source) if source else "") or (os.path.dirname(bpy.data.filepath)
                                                             if bpy.data.filepath else os.path.expanduser("~"))
    return os.path.join(folder, f"{stem}.exr")


def layers(stem: str) -> dict[str, np.ndarray]:
    """The maps of the photo `stem` that exist, as the EXR's float layers."""
    found: dict[str, np.ndarray] = {}
    normal = bpy.data.images.get(f"{stem}_normal")
    if normal is not None:
        vectors = images.image_pixels(normal) * 2 - 1
        found["normal"] = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True).clip(1e-6)
    albedo = bpy.data.images.get(f"{stem}_albedo")
    if albedo is not None:
        found["albedo"] = images.linear_pixels(albedo, clip=False)   # a fit can pass 1 on highlights
    height = bpy.data.images.get(f"{stem}_height")
    span = images.height_range(height) if height is not None else None
    if height is not None and span is not None:
        unit = images.image_pixels(height)[..., 0]
        found["height"] = (span[0] + unit * (span[1] - span[0])) * unit.shape[0]
    mask = bpy.data.images.get(f"{stem}_mask")
    if mask is not None:
        found["mask"] = images.image_pixels(mask)[..., 0]
    return found


class FACE_NORMALS_OT_export_exr(bpy.types.Operator):
    """Write the photo's normal, albedo, height and mask maps into one multilayer EXR"""
    bl_idname = "face_normals.export_exr"
    bl_label = "Export Multilayer EXR"

    image_name: StringProperty(name="Photo", description="Default: the Image Editor's image (the photo or one "
                                                         "of its maps)")
    filepath: StringProperty(subtype="FILE_PATH", description="Default: <photo>.exr beside the photo")
    filter_glob: StringProperty(default="*.exr", options={"HIDDEN"})

    def invoke(self, context, event):
        try:
            photo = images.require_photo(context, self.image_name)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.filepath = self.filepath or default_path(photo, photo_stem(photo))
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            photo = images.require_photo(context, self.image_name)
        except ValueError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        stem = photo_stem(photo)
        found = layers(stem)
        if not found:
            self.report({"ERROR"}, f"No maps of '{stem}' to export: run Estimate Face Normals first")
            return {"CANCELLED"}
        sizes = {array.shape[:2] for array in found.values()}
        if len(sizes) > 1:
            self.report({"ERROR"}, f"The maps of '{stem}' differ in size ({', '.join(f'{w}x{h}' for h, w in sizes)})"
                                   f": estimate them again together")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath) if self.filepath else default_path(photo, stem)
        try:
            write_multilayer(path, found)
        except OSError as error:
            self.report({"ERROR"}, f"Cannot write {path}: {error.strerror or error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {', '.join(found)} to {path}")
        return {"FINISHED"}


CLASSES = (FACE_NORMALS_OT_export_exr,)
