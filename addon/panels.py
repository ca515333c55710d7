"""Sidebar panels ("Face Normals" tab) in the Image Editor, the Shader Editor and the 3D viewport."""
from __future__ import annotations

import textwrap

import bpy

from . import environment, preferences, relight
from .link import LINK


def draw_message(layout, context, text: str, icon: str = "NONE") -> None:
    """A message wrapped over as many lines as the sidebar's width needs (never cut off)."""
    scale = context.preferences.view.ui_scale          # the box's margins and the icon take ~50 px
    characters = max(20, int((context.region.width - 50 * scale) / (7 * scale)))
    column = layout.column(align=True)
    for index, line in enumerate(textwrap.wrap(text, characters)):
        column.label(text=line, icon=icon if index == 0 else "BLANK1" if icon != "NONE" else "NONE")


def draw_backend(layout, context) -> None:
    from .backend_setup import STATE
    box = layout.box()
    if not LINK.info and preferences.get().backend_source == "ADDON" and environment.ready_info() is None:
        # one story: not set up (nothing about connecting to or starting what does not exist)
        if STATE.running:
            draw_message(box, context, f"Setting up the backend: {STATE.progress}", "SORTTIME")
        else:
            draw_message(box, context, "The backend is not set up yet: Set Up Backend makes it (once, a few "
                                       "minutes)", "INFO")
            box.operator("face_normals.setup_backend", text="Set Up Backend", icon="IMPORT")
        return
    draw_message(box, context, LINK.status, "CHECKMARK" if LINK.info else "ERROR" if LINK.error else "DOT")
    if LINK.error:
        draw_message(box, context, LINK.error)
    row = box.row(align=True)
    row.operator("face_normals.check_backend", text="Connect", icon="FILE_REFRESH")
    row.operator("face_normals.start_backend", text="Start", icon="PLAY")
    row.operator("face_normals.stop_backend", text="Stop", icon="PAUSE")


def draw_actions(layout, context, source: str) -> None:
    settings = context.scene.face_normals
    if getattr(context.space_data, "type", "") == "VIEW_3D":   # no shown image there: pick one
        layout.template_ID(settings, "photo", open="image.open", text="Photo")
    layout.prop(settings, "detect")
    col = layout.column(align=True)
    estimate = col.operator("face_normals.estimate", text="Estimate", icon="NORMALS_FACE")
    estimate.source, estimate.detect = source, settings.detect
    files = col.operator("face_normals.estimate", text="Estimate Files...", icon="FILE_IMAGE")
    files.source, files.detect = "FILES", settings.detect
    col.operator("face_normals.apply_to_material", text="Apply to Material", icon="MATERIAL")
    col.operator("face_normals.relightable_portrait", text="Relightable Portrait", icon="LIGHT_SUN")
    if getattr(context.space_data, "type", "") == "IMAGE_EDITOR":
        col.operator("face_normals.export_exr", text="Export EXR...", icon="EXPORT")
    col = layout.column(align=True)
    col.operator("face_normals.camera_background", text="Camera Background", icon="OUTLINER_OB_CAMERA")
    col.operator("face_normals.project_normals", text="Project onto Mesh", icon="MOD_UVPROJECT")


class _FaceNormalsPanel:
    bl_region_type = "UI"
    bl_category = "Face Normals"
    bl_label = "Face Normals"
    source = "ACTIVE"

    def draw(self, context):
        draw_backend(self.layout, context)
        draw_actions(self.layout, context, self.source)


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
    source = "ACTIVE"      # the photo picked in the panel


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
        running = relight.FACE_NORMALS_OT_relight_preview.running()
        row.operator("face_normals.relight_preview", text="Previewing" if running else "Preview",
                     icon="LIGHT_SUN", depress=running)
        row.operator("face_normals.relight_bake", text="Bake", icon="RENDER_STILL")
        layout.label(text="Normal Map (default: <photo>_normal)")
        layout.template_ID(settings, "normal_map", open="image.open")
        layout.label(text="Mask (default: <photo>_mask)")
        layout.template_ID(settings, "mask", open="image.open")
        layout.prop(settings, "use_albedo")
        if settings.use_albedo:
            layout.label(text="Albedo (default: <photo>_albedo)")
            layout.template_ID(settings, "albedo", open="image.open")
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
        col.prop(settings, "fill")
        col = layout.column(align=True)
        for name in ("delight", "specular", "roughness", "exposure"):
            col.prop(settings, name)


CLASSES = (FACE_NORMALS_PT_image, FACE_NORMALS_PT_relight, FACE_NORMALS_PT_shader, FACE_NORMALS_PT_view3d)
