"""Face Normals: estimate normal maps of face photos with the face-normals backend, apply them
to materials, build relightable portraits, project normals onto a mesh's own UVs, and preview
relighting in the Image Editor.  The backend runs in its own process (it needs PyTorch, which
Blender's Python does not have); `client/` talks to it over ZeroMQ, `core/` is what both share."""
from __future__ import annotations

import sys

import bpy

try:
    import zmq  # noqa: F401  (from the wheel bundled for this Python)
except ImportError as error:      # Blender before 5.0 installs a zip made for another Python
    raise ImportError(f"Face Normals: this build is for another Python than Blender's "
                      f"{sys.version_info[0]}.{sys.version_info[1]}: install the zip made for it "
                      f"(face_normals-<version>.zip for Python 3.11, Blender 4.2 to 5.0; "
                      f"face_normals-<version>-python3.13.zip for Python 3.13)") from error

from . import operators, panels, preferences, projection_ops, relight, settings
from .link import LINK

CLASSES = (preferences.FaceNormalsPreferences, *settings.CLASSES, *operators.CLASSES, *projection_ops.CLASSES,
           *relight.CLASSES, *panels.CLASSES)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    relight.register_settings()
    settings.register()


def unregister():
    LINK.close()
    relight.unregister_settings()
    settings.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
