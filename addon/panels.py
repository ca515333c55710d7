"""Sidebar panels ("Face Normals" tab) in the Image Editor, the Shader Editor and the 3D viewport."""
from __future__ import annotations

import bpy

from . import environment, preferences
from .link import LINK


def draw_backend(layout) -> None:
    box = layout.box()
    if not LINK.info and preferences.get().backend_source == "ADDON" and environment.ready_info() is None:
        box.label(text="The backend is not set up yet", icon="INFO")
        box.operator("face_normals.setup_backend", icon="IMPORT")
    box.label(text=LINK.status, icon="CHECKMARK" if LINK.info else "ERROR" if LINK.error else "DOT")
    if LINK.error:
        box.label(text=LINK.error[:120])
    row = box.row(align=True)
    row.operator("face_normals.check_backend", icon="FILE_REFRESH")
    row.operator("face_normals.start_backend", icon="PLAY")
    row.operator("face_normals.stop_backend", icon="PAUSE")


def draw_actions(layout, source: str) -> None:
    col = layout.column(align=True)
    estimate = col.operator("face_normals.estimate", icon="NORMALS_FACE")
    estimate.source = source
    files = col.operator("face_normals.estimate", text="Estimate Files...", icon="FILE_IMAGE")
    files.source = "FILES"
    col.operator("face_normals.apply_to_material", icon="MATERIAL")
    col.operator("face_normals.relightable_portrait", icon="LIGHT_SUN")
    col = layout.column(align=True)
    col.operator("face_normals.camera_background", icon="OUTLINER_OB_CAMERA")
    col.operator("face_normals.project_normals", icon="MOD_UVPROJECT")


class _FaceNormalsPanel:
    bl_region_type = "UI"
    bl_category = "Face Normals"
    bl_label = "Face Normals"
    source = "ACTIVE"

    def draw(self, context):
        draw_backend(self.layout)
        draw_actions(self.layout, self.source)


class FACE_NORMALS_PT_image(_FaceNormalsPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"


class FACE_NORMALS_PT_shader(_FaceNormalsPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    source = "NODE"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "ShaderNodeTree"


class FACE_NORMALS_PT_view3d(_FaceNormalsPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    source = "NODE"


class FACE_NORMALS_PT_relight(bpy.types.Panel):
    """The relighting preview's settings, below the Image Editor's Face Normals panel."""
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Face Normals"
    bl_label = "Relight"

    def draw(self, context):
        settings = context.scene.face_normals_relight
        layout = self.layout
        row = layout.row(align=True)
        row.operator("face_normals.relight_preview", icon="LIGHT_SUN")
        row.operator("face_normals.relight_bake", icon="RENDER_STILL")
        layout.template_ID(settings, "normal_map", open="image.open")
        layout.template_ID(settings, "mask", open="image.open")
        for index, light in enumerate(settings.lights):
            box = layout.box()
            header = box.row()
            header.label(text=f"Light {index + 1}" + ("  (dragged)" if index == settings.active_light else ""))
            header.operator("face_normals.relight_light_remove", text="", icon="X").index = index
            box.prop(light, "direction", text="")
            row = box.row(align=True)
            row.prop(light, "colour", text="")
            row.prop(light, "intensity")
        row = layout.row(align=True)
        row.operator("face_normals.relight_light_add", icon="ADD")
        row.prop(settings, "active_light")
        col = layout.column(align=True)
        col.prop(settings, "ambient_colour")
        col.prop(settings, "ambient_strength")
        col.prop(settings, "ambient_from_above")
        col = layout.column(align=True)
        for name in ("delight", "specular", "roughness", "exposure"):
            col.prop(settings, name)


CLASSES = (FACE_NORMALS_PT_image, FACE_NORMALS_PT_relight, FACE_NORMALS_PT_shader, FACE_NORMALS_PT_view3d)
