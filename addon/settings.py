"""The scene's Face Normals settings that the sidebar shows: the photo the 3D viewport's actions
work on (the Image Editor has its own shown image) and whether to look for faces."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, PointerProperty

from .client.protocol import EstimateOptions


class FaceNormalsSettings(bpy.types.PropertyGroup):
    photo: PointerProperty(type=bpy.types.Image, name="Photo",
                           description="The photo for Estimate, Camera Background and Project Normals "
                                       "where no Image Editor shows one")
    detect: BoolProperty(name="Detect Faces", default=EstimateOptions.detect,
                         description="Find the faces; untick if the photo is already a face crop")


def register() -> None:
    bpy.types.Scene.face_normals = PointerProperty(type=FaceNormalsSettings)


def unregister() -> None:
    del bpy.types.Scene.face_normals


CLASSES = (FaceNormalsSettings,)
