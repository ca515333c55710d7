"""Add-on preferences: where the backend is, whether to start it, and output defaults."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

CONVENTIONS = [("OPENGL", "OpenGL (+Y up)", "Blender's own tangent-space convention"),
               ("DIRECTX", "DirectX (-Y)", "Green flipped, for engines that expect it")]
SAVE_MODES = [("PACK", "Pack into .blend", "Keep the normal map inside the .blend file"),
              ("BESIDE", "Save beside photo", "Write <photo>_normal.png next to the photo")]


class FaceNormalsPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Backend Address", default="tcp://127.0.0.1:5555",
                            description="ZeroMQ address of the face-normals backend")
    auto_start: BoolProperty(name="Start Backend Automatically", default=True,
                             description="Start the backend when it is not running")
    python_command: StringProperty(
        name="Backend Python", default="python3",
        description="Python (or a command running one) with the face-normals backend installed: "
                    "it runs `<command> -m backend serve`")
    backend_args: StringProperty(name="Backend Arguments", default="",
                                 description="Extra arguments for `serve`, e.g. --device cpu "
                                             "or --weights FILE")
    timeout: FloatProperty(name="Timeout (s)", default=5.0, min=0.5, max=120.0,
                           description="Report the backend as gone after this long without a word")
    idle_timeout: IntProperty(name="Stop Started Backend After (s)", default=900, min=0,
                              description="A backend the add-on started stops after this long "
                                          "unused (0: never)")
    convention: EnumProperty(name="Convention", items=CONVENTIONS, default="OPENGL")
    save_mode: EnumProperty(name="Result", items=SAVE_MODES, default="PACK")
    max_size: IntProperty(name="Max Size (px)", default=0, min=0,
                          description="Scale results down to at most this many pixels on the long "
                                      "side (0: the photo's size)")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        for name in ("address", "auto_start", "python_command", "backend_args", "timeout", "idle_timeout",
                     "convention", "save_mode", "max_size"):
            layout.prop(self, name)


def get(context=None) -> FaceNormalsPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences
