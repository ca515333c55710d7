"""Add-on preferences: where the backend is, whether to start it, and output defaults."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import environment

CONVENTIONS = [("OPENGL", "OpenGL (+Y up)", "Blender's own tangent-space convention"),
               ("DIRECTX", "DirectX (-Y)", "Green flipped, for engines that expect it")]
SAVE_MODES = [("PACK", "Pack into .blend", "Keep the normal map inside the .blend file"),
              ("BESIDE", "Save beside photo", "Write <photo>_normal.png next to the photo")]
BACKEND_SOURCES = [("ADDON", "Set Up by the Add-on", "A private environment the add-on makes (Set Up Backend)"),
                   ("OWN", "My Own Python", "A Python where you installed the backend yourself")]
TORCH_BUILDS = [("CPU", "CPU", "PyTorch's CPU build (download.pytorch.org/whl/cpu as an extra index): "
                               "the smaller download, runs anywhere"),
                ("CUDA", "NVIDIA GPU (CUDA)", "The package index's default PyTorch (CUDA on Linux and Windows): "
                                              "several GB, for an NVIDIA GPU"),
                ("INDEX", "As the Index Serves", "Whatever the package index and pip's own configuration give")]

MODELS = [("AUTO", "Automatic", "The backend's default for its device: the fast v3 model on a CPU, the "
                                "quality one on a GPU, once their weights ship (until then the 8th model)"),
          ("FAST", "Fast", "The fast v3 model (serve --model fast): for CPUs"),
          ("QUALITY", "Quality", "The quality v3 model (serve --model quality): sharper, for GPUs; "
                                 "on a CPU about 4x the fast one's time")]


class FaceNormalsPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Backend Address", default="tcp://127.0.0.1:5555",
                            description="ZeroMQ address of the face-normals backend")
    auto_start: BoolProperty(name="Start Backend Automatically", default=True,
                             description="Start the backend when it is not running")
    backend_source: EnumProperty(name="Backend", items=BACKEND_SOURCES, default="ADDON")
    setup_python: StringProperty(name="Set-Up Python", default="",
                                 description="The Python 3.11-3.13 the environment is made with (empty: "
                                             "Blender's own if it can, else python3.13/3.12/3.11 on PATH)")
    torch_build: EnumProperty(name="PyTorch", items=TORCH_BUILDS, default="CPU")
    index_url: StringProperty(name="Package Index", default="",
                              description="A package index URL instead of pip's default (PyPI), e.g. a "
                                          "studio mirror")
    wheel_folder: StringProperty(name="Wheel Folder (Offline)", default="", subtype="DIR_PATH",
                                 description="Install only from this folder of wheels, no network "
                                             "(make it with `pip download`, see the README)")
    ca_bundle: StringProperty(name="Certificate Bundle", default="", subtype="FILE_PATH",
                              description="Behind a proxy that inspects HTTPS: your organisation's CA "
                                          "certificates (a .pem file) for pip's --cert (empty: the system's "
                                          "certificate store)")
    pip_args: StringProperty(name="Extra pip Arguments", default="",
                             description="Added to the set-up's pip install, e.g. --proxy URL or "
                                         "-c constraints.txt")
    python_command: StringProperty(
        name="Backend Python", default="python3",
        description="Python (or a command running one) with the face-normals backend installed: "
                    "it runs `<command> -m backend serve`")
    model: EnumProperty(name="Model", items=MODELS, default="AUTO",
                        description="Which model a backend the add-on starts runs")
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
        from .backend_setup import DISK_NEEDS, STATE, nvidia_gpu
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend_source")
        box = layout.box()
        if self.backend_source == "OWN":
            box.prop(self, "python_command")
        else:
            ready = environment.ready_info()
            if ready:
                box.label(text=f"Ready: {ready.get('device', '?')}, model {ready.get('model', '?')} "
                               f"(set up {ready.get('date', '?')})", icon="CHECKMARK")
            elif STATE.running:
                box.label(text=f"Setting up: {STATE.progress} (Esc cancels)", icon="SORTTIME")
            else:
                box.label(text=f"Not set up: press Set Up Backend (a few minutes; {DISK_NEEDS[self.torch_build]})",
                          icon="INFO")
            chosen = ready.get("chosen_python", "") if ready else STATE.python
            if chosen:
                box.label(text=f"Python: {chosen}", icon="BLANK1")
            if STATE.error:
                column = box.column(align=True)
                for number, line in enumerate(_wrap(STATE.error)):
                    column.label(text=line, icon="ERROR" if number == 0 else "BLANK1")
                for line in STATE.log_tail:
                    column.label(text=line[:160])
                column.label(text=f"Whole log: {environment.log_path()}")
            row = box.row()
            row.operator("face_normals.setup_backend", icon="IMPORT")
            row.operator("face_normals.remove_backend", icon="TRASH")
            box.prop(self, "torch_build")
            if self.torch_build == "CPU" and nvidia_gpu():
                box.label(text="An NVIDIA GPU is present: PyTorch 'NVIDIA GPU (CUDA)' would use it", icon="INFO")
            for name in ("setup_python", "index_url", "ca_bundle", "wheel_folder", "pip_args"):
                box.prop(self, name)
        for name in ("address", "auto_start", "model", "backend_args", "timeout", "idle_timeout",
                     "convention", "save_mode", "max_size"):
            layout.prop(self, name)


def _wrap(text: str, width: int = 110) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width) or [""]


def get(context=None) -> FaceNormalsPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences
