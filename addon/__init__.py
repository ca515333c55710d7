"""Face Normals: estimate normal maps of face photos with the face-normals backend, apply them
to materials, build relightable portraits, project normals onto a mesh's own UVs, and preview
relighting in the Image Editor.  The backend runs in its own process (it needs PyTorch, which
Blender's Python does not have); `client/` talks to it over ZeroMQ, `core/` is what both share.

In the source tree client/, core/ and shaders/ are links to the backend's own packages (one copy
of the code, which mypy and an editor follow); `make addon` ships them as folders.  Blender's
modules are imported in `register()` only, so the bpy-free modules here (job, pip_progress,
texels, backend_process) import and are tested anywhere."""
from __future__ import annotations

import sys

try:
    import zmq  # noqa: F401  (from the wheel bundled for this Python)
except ImportError as error:      # Blender before 5.0 installs a zip made for another Python
    raise ImportError(f"Face Normals: this build is for another Python than Blender's "
                      f"{sys.version_info[0]}.{sys.version_info[1]}: install the zip made for it "
                      f"(face_normals-<version>.zip for Python 3.11, Blender 4.2 to 5.0; "
                      f"face_normals-<version>-python3.13.zip for Python 3.13)") from error


def _classes() -> tuple:
    from . import exr_export, operators, panels, preferences, projection_ops, relight, settings
    return (preferences.FaceNormalsPreferences, *settings.CLASSES, *operators.CLASSES, *projection_ops.CLASSES,
            *relight.CLASSES, *exr_export.CLASSES, *panels.CLASSES)


def register():
    import bpy

    from . import relight, settings
    for cls in _classes():
        bpy.utils.register_class(cls)
    relight.register_settings()
    settings.register()


def unregister():
    import bpy

    from . import relight, settings
    from .link import LINK
    LINK.close()
    relight.unregister_settings()
    settings.unregister()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
