"""What the window tests do to the add-on, written once for every test module: its module's name
in Blender, an operator invoked as a click invokes it, the job it starts waited for, the reports
read, the preferences set, an image and the sidebar's tab shown in the Image Editor."""
from __future__ import annotations

ADDON = "bl_ext.user_default.face_normals"


def invoke(window, operator: str, area: str = "IMAGE_EDITOR", **properties) -> str:
    """Operator with INVOKE_DEFAULT from a window area, as a click would call it; resets the stall log."""
    return window.run(f"""
log["max_gap"] = 0.0
log["slowest_step"] = (0.0, "", "", "")
log["ended_before"] = log["ended"]
import time
started = time.monotonic()
with ui({area!r}):
    result = str(bpy.ops.{operator}("INVOKE_DEFAULT", **{properties!r}))
log["invoke_s"] = time.monotonic() - started
""")


def wait_job(window, timeout: float = 90) -> None:
    assert window.wait_for('log["ended"] > log["ended_before"]', timeout=timeout), "the job did not end"


def reports(window) -> list[str]:
    return window.run("result = reports()")


def set_preferences(window, **values) -> None:
    window.run(f"""
prefs = bpy.context.preferences.addons[{ADDON!r}].preferences
for key, value in {values!r}.items():
    setattr(prefs, key, value)
from {ADDON}.link import LINK
LINK.info = None          # as after a restart of Blender: the next job connects again
result = None
""")


def show(window, image: str) -> None:
    window.run(f"""
space = area_of("IMAGE_EDITOR").spaces.active
space.image = bpy.data.images[{image!r}]
area_of("IMAGE_EDITOR").tag_redraw()
result = None
""")


def show_sidebar_tab(window) -> None:
    """The Image Editor's sidebar on the add-on's tab (its tabs exist once it was drawn)."""
    window.run("""
region = next(r for r in area_of("IMAGE_EDITOR").regions if r.type == "UI")
region.active_panel_category = "Face Normals"
area_of("IMAGE_EDITOR").tag_redraw()
result = None
""")
