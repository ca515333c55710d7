"""The artist's path of issue #30 in a real window (Debian trixie's Blender 4.3.2 under Xvfb, the
extension from its zip): Estimate, then at once Relightable Portrait and Relight Preview with the
normal map still shown; Add Light clicked in the sidebar during the preview; a photo without a
person estimated with Detect Faces off; Set Up Backend with Debian's own Python (no ensurepip)
against an HTTPS index whose certificate is not trusted; Remove Backend with its confirmation.

Each test starts from what the module's fixture made (the add-on installed, the astronaut
estimated) and leaves the preview stopped; the screenshots go to the `screenshots` fixture's folder
(docs/screenshots under `make screenshots`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hostile_hosts import untrusted_https_index
from PIL import Image

from .steps import ADDON, invoke, reports, set_preferences, show, show_sidebar_tab, wait_job
from .window import HEIGHT, WIDTH

pytestmark = pytest.mark.slow

CONFIRM_BLUE = (71, 114, 179)      # the default theme's colour of a confirmation's button


@pytest.fixture(scope="module")
def estimated(installed, backend, folder, astronaut):
    """The add-on at the module's backend and the astronaut estimated: the editor shows
    astronaut_normal, as after a click on Estimate, with the sidebar on the add-on's tab."""
    window = installed
    photo = folder / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    set_preferences(window, address=backend, auto_start=False, timeout=2.0)
    window.run(f"""
area_of("IMAGE_EDITOR").spaces.active.image = bpy.data.images.load({str(photo)!r})
with ui("IMAGE_EDITOR"):
    bpy.ops.image.view_all(fit_view=True)
result = None
""")
    time.sleep(1.0)                          # the sidebar's tabs exist once it was drawn
    show_sidebar_tab(window)
    assert invoke(window, "face_normals.estimate") == "{'RUNNING_MODAL'}"
    wait_job(window)
    assert window.run('result = area_of("IMAGE_EDITOR").spaces.active.image.name') == "astronaut_normal"
    return window


def _show_normal_map(window) -> None:
    show(window, "astronaut_normal")


def _find_button(window, area: str, command: str, region: str = "UI") -> tuple[int, int]:
    """Where an operator's button is on the screen: the pointer is moved down the region, and
    Ctrl+C over a button copies its Python command (Blender's own), until it is `command`."""
    left, top, width, height = window.run(f'result = region_box({area!r}, {region!r})')
    for x in (left + width // 3, left + 2 * width // 3):
        for y in range(top + 10, top + height - 5, 9):
            window.run('bpy.context.window_manager.clipboard = ""; result = None')
            window.key("ctrl+c", x, y)
            if command in window.run("result = bpy.context.window_manager.clipboard"):
                return x, y
    raise AssertionError(f"no {command} button in the {area}'s {region}")


def _status_bar(window, path: Path) -> np.ndarray:
    window.screenshot(path, box=(0, HEIGHT - 26, WIDTH, 26))
    return np.asarray(Image.open(path).convert("L"), float)


BACKEND_FIELDS = ("backend_source", "address", "auto_start", "timeout", "setup_python", "torch_build",
                  "index_url", "pip_args", "ca_bundle")


@pytest.fixture(autouse=True)
def backend_preferences_restored(estimated):
    """The set-up and remove tests change the backend's preferences: every test leaves them as it
    found them, so the others (in any order) still reach the module's backend."""
    read = f"p = bpy.context.preferences.addons[{ADDON!r}].preferences\n"
    saved = estimated.run(read + f"result = {{name: getattr(p, name) for name in {BACKEND_FIELDS!r}}}")
    yield
    estimated.run(read + f"for name, value in {saved!r}.items():\n    setattr(p, name, value)\nresult = None")


@pytest.fixture(autouse=True)
def preferences_window_closed(estimated):
    """The Preferences window a test opened is closed after it: left open, it covers the main
    window's sidebar, where the tests that run after it (in any order) click."""
    yield
    if estimated.run("result = len(bpy.context.window_manager.windows)") > 1:
        _in_preferences(estimated, "bpy.ops.wm.window_close()\nresult = None")


def test_after_estimate_portrait_and_preview_need_no_going_back(estimated, folder):
    window = estimated
    _show_normal_map(window)
    assert invoke(window, "face_normals.relightable_portrait", area="IMAGE_EDITOR") == "{'FINISHED'}"
    assert window.run('result = len(bpy.data.collections["Face Portrait astronaut.png"].objects)') >= 3
    _show_normal_map(window)
    assert invoke(window, "face_normals.apply_to_material") == "{'FINISHED'}"
    assert window.run("""
nodes = bpy.data.objects["Cube"].active_material.node_tree.nodes
result = sorted(n.image.name for n in nodes if n.bl_idname == "ShaderNodeTexImage")
""") == ["astronaut_albedo", "astronaut_height", "astronaut_normal"]   # the active object's, named in its report
    _show_normal_map(window)
    assert window.run("""
with ui("IMAGE_EDITOR"):
    result = str(bpy.ops.face_normals.relight_bake("INVOKE_DEFAULT"))
""") == "{'FINISHED'}"
    assert window.run('result = area_of("IMAGE_EDITOR").spaces.active.image.name') == "astronaut_relit"


def test_the_preview_from_the_sidebar_keeps_the_sidebars_clicks(estimated, folder, screenshots):
    """Started from the normal map with the sidebar's button; the status bar says what to do; a
    click on Add Light adds a light and leaves Light 1 where it was; a drag on the image moves it."""
    window = estimated
    _show_normal_map(window)
    assert window.run("""
with ui("IMAGE_EDITOR", "UI"):                       # where the Preview button is
    result = str(bpy.ops.face_normals.relight_preview("INVOKE_DEFAULT"))
""") == "{'RUNNING_MODAL'}"
    try:
        assert window.run('result = area_of("IMAGE_EDITOR").spaces.active.image.name') == "astronaut.png"
        assert window.run(f"result = __import__({ADDON + '.relight'!r}, fromlist=['x'])"
                          ".FACE_NORMALS_OT_relight_preview.running()")
        add_light = _find_button(window, "IMAGE_EDITOR", "relight_light_add")   # keys pass through too
        lights = window.run("result = len(C.scene.face_normals_relight.lights)")
        light = window.run("result = tuple(C.scene.face_normals_relight.lights[0].direction)")
        window.click(*add_light)
        time.sleep(0.5)
        assert window.run("result = len(C.scene.face_normals_relight.lights)") == lights + 1
        assert window.run("result = tuple(C.scene.face_normals_relight.lights[0].direction)") == light
        window.park_pointer()
        time.sleep(1.0)
        status = _status_bar(window, folder / "preview_status.png")
        assert status.std() > 5
        Image.open(folder / "preview_status.png").save(screenshots / "relight_preview_status_bar.png")
        box = window.run('result = region_box("IMAGE_EDITOR", "UI")')
        window.screenshot(screenshots / "relight_preview_sidebar.png", box=(box[0], box[1], box[2], min(box[3], 700)))
        start = window.run('result = screen_xy("IMAGE_EDITOR", 0.3, 0.5)')
        end = window.run('result = screen_xy("IMAGE_EDITOR", 0.45, 0.6)')
        window.drag(tuple(start), tuple(end))
        time.sleep(0.3)
        moved = window.run("result = tuple(C.scene.face_normals_relight.lights[0].direction)")
        assert np.abs(np.subtract(moved, light)).max() > 0.05, (light, moved)
    finally:
        x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
        window.key("Escape", x, y)
    time.sleep(0.3)
    assert not window.run(f"result = __import__({ADDON + '.relight'!r}, fromlist=['x'])"
                          ".FACE_NORMALS_OT_relight_preview.running()")


def test_no_person_with_detect_faces_off_is_a_warning(estimated, folder, screenshots):
    window = estimated
    grey = folder / "grey.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(grey)
    window.run(f'bpy.data.images.load({str(grey)!r}); result = None')
    show(window, "grey.png")
    window.run("C.scene.face_normals.detect = False; result = None")
    try:
        assert invoke(window, "face_normals.estimate", detect=False) == "{'RUNNING_MODAL'}"
        wait_job(window)
        told = reports(window)
        assert any("no person in this image" in line for line in told[-3:]), told[-3:]
        window.park_pointer()
        time.sleep(1.0)
        _status_bar(window, screenshots / "no_person_warning.png")
    finally:
        window.run("C.scene.face_normals.detect = True; result = None")


def _open_preferences(window) -> None:
    """Edit > Preferences on the add-on's page (a window of its own)."""
    window.run("""
bpy.context.preferences.active_section = "ADDONS"
bpy.ops.screen.userpref_show("INVOKE_DEFAULT")
bpy.context.window_manager.addon_search = "Face Normals"
result = None
""")
    assert window.wait_for("len(bpy.context.window_manager.windows) > 1", timeout=20)
    _in_preferences(window, f"bpy.ops.preferences.addon_expand(module={ADDON!r})\nresult = None")
    # no window manager under Xvfb: the Preferences open small, over the main window's right side
    window.tool("xdotool", "search", "--name", "Preferences", "windowmove", "%@", "560", "0")
    window.tool("xdotool", "search", "--name", "Preferences", "windowsize", "%@", "1040", "940")


def _in_preferences(window, source: str):
    """Python run with the Preferences window's area as the context (as its buttons have it)."""
    return window.run(f"""
prefs_window = bpy.context.window_manager.windows[-1]
area = next(a for a in prefs_window.screen.areas if a.type == "PREFERENCES")
region = next(r for r in area.regions if r.type == "WINDOW")
with bpy.context.temp_override(window=prefs_window, area=area, region=region):
{chr(10).join('    ' + line for line in source.strip().splitlines())}
""")


def test_set_up_with_debians_python_and_an_untrusted_index(estimated, folder, screenshots):
    """The chroot's Python is Debian's without python3-venv; the index's certificate is self-signed:
    the panel names the Python and the certificate failure, and its advice (the Certificate
    Bundle) gets pip past the certificate."""
    window = estimated
    with untrusted_https_index(folder) as (url, certificate, asked):
        window.run(f"""
prefs = bpy.context.preferences.addons[{ADDON!r}].preferences
prefs.backend_source, prefs.setup_python, prefs.torch_build = "ADDON", "", "INDEX"
prefs.index_url, prefs.pip_args, prefs.ca_bundle = {url!r}, "--retries 0 --timeout 20", ""
log["progress"].clear()
result = None
""")
        _open_preferences(window)
        assert _in_preferences(window, """
log["ended_before"] = log["ended"]
result = str(bpy.ops.face_normals.setup_backend("INVOKE_DEFAULT"))
""") == "{'RUNNING_MODAL'}"
        shot = None                 # the main window's status bar while the Preferences' job runs
        deadline = time.monotonic() + 120
        while shot is None and time.monotonic() < deadline and not window.run(
                'result = log["ended"] > log["ended_before"]'):
            texts = [text for _, text in window.run('result = log["progress"]')]
            if any("installing pip" in text or "resolving" in text for text in texts):
                shot = _status_bar(window, screenshots / "setup_status_bar.png")
            time.sleep(0.1)
        wait_job(window, timeout=180)
        state = window.run(f"""
from {ADDON}.backend_setup import STATE
result = STATE.error, STATE.python
""")
        print("set-up:", state)
        error, python = state
        assert "could not verify the HTTPS certificate of 127.0.0.1" in error and "Certificate Bundle" in error
        assert "without ensurepip" in python, python
        assert not asked
        time.sleep(1.0)
        window.screenshot(screenshots / "setup_certificate.png")
        # the advice: the index's CA bundle in the field made for it
        window.run(f"""
bpy.context.preferences.addons[{ADDON!r}].preferences.ca_bundle = {str(certificate)!r}
result = None
""")
        _in_preferences(window, """
log["ended_before"] = log["ended"]
result = str(bpy.ops.face_normals.setup_backend("INVOKE_DEFAULT"))
""")
        wait_job(window, timeout=180)
        error = window.run(f"from {ADDON}.backend_setup import STATE\nresult = STATE.error")
        print("with the bundle:", error)
        assert asked and "certificate" not in error.lower() and f"{url} gave no" in error
    progress = [text for _, text in window.run('result = log["progress"]')]
    assert any("installing pip into the environment" in text for text in progress), progress


def test_remove_asks_first_and_estimate_then_says_not_set_up(estimated, folder, screenshots, closed_port):
    window = estimated
    folder_exists = f"__import__({ADDON + '.environment'!r}, fromlist=['x']).folder().exists()"
    if not window.run(f"result = {folder_exists}"):       # a half-made environment counts
        window.run(f"__import__({ADDON + '.environment'!r}, fromlist=['x']).folder().mkdir(); result = None")
    _open_preferences(window)
    x, y = 1100, 500                                    # over the Preferences, where its button is
    window.tool("xdotool", "mousemove", str(x), str(y))
    assert _in_preferences(window, """
log["ended_before"] = log["ended"]
result = str(bpy.ops.face_normals.remove_backend("INVOKE_DEFAULT"))
""") == "{'RUNNING_MODAL'}"                             # the question
    time.sleep(1.0)
    screen = np.asarray(Image.open(window.screenshot(folder / "remove.png")).convert("RGB")).astype(int)
    near = screen[y - 150:y + 150]                      # the question opens at the pointer
    confirm = np.argwhere(np.abs(near - CONFIRM_BLUE).sum(-1) < 6) + [y - 150, 0]   # its Remove button
    assert len(confirm) > 200, "no confirmation"
    top, left = confirm.min(0)
    bottom, right = confirm.max(0)
    window.screenshot(screenshots / "remove_confirmation.png",
                      box=(max(0, left - 420), top - 90, right - max(0, left - 420) + 20, bottom - top + 110))
    assert window.run(f"result = {folder_exists}")             # nothing removed before the answer
    window.click((left + right) // 2, (top + bottom) // 2)
    assert window.wait_for(f"not {folder_exists}", timeout=60)
    assert window.wait_for('any("Backend removed" in line for line in reports()[-2:])', timeout=30)
    assert not window.run("result = bpy.ops.face_normals.remove_backend.poll()")   # greyed out now
    set_preferences(window, backend_source="ADDON", auto_start=True, address=f"tcp://127.0.0.1:{closed_port}")
    show(window, "astronaut.png")
    started = time.monotonic()
    assert invoke(window, "face_normals.estimate") == "{'RUNNING_MODAL'}"
    wait_job(window, timeout=30)
    print(f"Estimate after Remove said so after {time.monotonic() - started:.1f} s")
    assert any("not set up yet" in line for line in reports(window)[-2:]), reports(window)[-3:]
    # the sidebar tells one story: not set up, and the button that sets it up
    x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
    window.key("Escape", x, y)                          # the error's pop-up
    _in_preferences(window, "bpy.ops.wm.window_close()\nresult = None")   # it covers the sidebar
    window.park_pointer()
    time.sleep(1.0)
    box = window.run('result = region_box("IMAGE_EDITOR", "UI")')
    window.screenshot(screenshots / "sidebar_not_set_up.png", box=(box[0], box[1], box[2], 160))
