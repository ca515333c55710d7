"""The add-on in a real Blender window (Debian trixie's Blender 4.3.2, Python 3.13, under Xvfb on
software OpenGL): installed from the built zip through Blender's own installer, used through the
modal path with real mouse and keys (xdotool).  The tests share one window; each sets up what it
needs through fixtures (the add-on installed, in conftest.py; below, the preferences, the photo and
its normal map), so any one runs alone and in any order.

Takes the screenshots the README shows (the panels, the status bar while estimating, the relight
preview, a relit portrait and its face, the portrait with its key light on the left and on the
right) into the `screenshots` fixture's folder: docs/screenshots under `make screenshots`, so the
README's pictures are what this test saw.  Set FACE_NORMALS_WINDOW_KEEP=1 to keep the run's folder
(every screenshot, Blender's and the backend's logs) under /tmp."""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .steps import ADDON, invoke, reports, set_preferences, show, show_sidebar_tab, wait_job
from .window import HEIGHT

pytestmark = pytest.mark.slow

# The UI promise, measured on every failure path (printed) and bounded generously: the machines
# that run these tests are shared and loaded, and a bound near the measurement would fail for the
# load, not for a defect.  The add-on's own invoke and modal steps take ~1 ms; STALL is far above
# that and still below the 1 s a blocking wait for an absent backend would hold the main thread
# (test_no_backend's timeout), so such a regression still fails.
STALL = 0.5
# The gap between two ticks of control.py's timer also holds Blender's own redraws: on llvmpipe
# with two shared cores one redraw of the window after a report takes 0.2-0.3 s by itself, so the
# gap is held to "the UI kept answering": no freeze like the ~5 s one of the item 2.
ANSWERING = 3.0


@pytest.fixture(scope="module")
def photos(folder, astronaut) -> dict[str, Path]:
    made = folder / "photos"
    made.mkdir()
    paths = {"astronaut": made / "astronaut.png", "grey": made / "grey.png", "text": made / "notes.png"}
    Image.fromarray(astronaut).save(paths["astronaut"])
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(paths["grey"])
    paths["text"].write_text("not an image, whatever its name says\n")
    batch = folder / "batch"
    batch.mkdir()
    for index in range(8):
        Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1] if index % 2 else astronaut)).save(
            batch / f"portrait_{index}.png")
    paths["batch"] = batch
    return paths


@pytest.fixture
def on_backend(installed, backend):
    """The add-on's preferences at the tests' backend, not starting one by itself."""
    set_preferences(installed, address=backend, auto_start=False, timeout=2.0)
    return installed


@pytest.fixture
def astronaut_shown(on_backend, photos):
    """The astronaut photo loaded (once) and shown in the Image Editor."""
    _load(on_backend, photos["astronaut"])
    show(on_backend, "astronaut.png")
    return on_backend


@pytest.fixture
def with_normals(astronaut_shown):
    """astronaut_shown, with its normal map (estimated through the operator's blocking path when
    no earlier test made one)."""
    astronaut_shown.run("""
if "astronaut_normal" not in bpy.data.images:
    bpy.ops.face_normals.estimate(image_name="astronaut.png")
result = None
""", timeout=120)
    return astronaut_shown


def _load(window, path: Path) -> None:
    window.run(f"bpy.data.images.load({str(path)!r}, check_existing=True); result = None")


def test_installs_through_blenders_installer(installed):
    """Install from Disk's operator, in the window (the `installed` fixture), enables it."""
    assert installed.run(f"result = {ADDON!r} in bpy.context.preferences.addons")
    assert installed.run("result = hasattr(bpy.types, 'FACE_NORMALS_OT_estimate')")


def test_estimate_shows_progress_during_the_network_pass(astronaut_shown, photos, folder, screenshots):
    window = astronaut_shown
    window.run("""
with ui("IMAGE_EDITOR"):
    bpy.ops.image.view_all(fit_view=True)
result = None
""")
    names = [{"name": f"portrait_{index}.png"} for index in range(4)]
    window.run('log["progress"].clear()')
    assert invoke(window, "face_normals.estimate", source="FILES", directory=str(photos["batch"]) + "/",
                  files=names) == "{'RUNNING_MODAL'}"
    shot = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:                 # the status bar while photos are under way
        texts = [text for _, text in window.run('result = log["progress"]')]
        if any(re.search(r"Estimating.* [1-3]/4", text) for text in texts):
            time.sleep(0.3)                            # the status bar redraws on the next tick
            shot = window.screenshot(folder / "progress.png")
            break
        time.sleep(0.05)
    wait_job(window)
    progress = window.run('result = log["progress"]')
    counts = [int(m.group(1)) for _, text in progress if (m := re.search(r" (\d)/4 ", text))]
    assert shot is not None and 0 < max(c for c in counts if c < 4), progress
    assert any("Made portrait_0_normal" in line for line in reports(window)), reports(window)
    status = np.asarray(Image.open(shot).convert("L"))[-24:, :700]    # the status bar's text is there
    assert status.std() > 5, "the status bar is empty while estimating"
    Image.open(shot).crop((0, HEIGHT - 26, 700, HEIGHT)).save(screenshots / "status_bar.png")

    # one photo from the Image Editor: the result is shown, and the sidebar says Connected
    show(window, "astronaut.png")
    assert invoke(window, "face_normals.estimate") == "{'RUNNING_MODAL'}"
    wait_job(window)
    assert window.run('result = area_of("IMAGE_EDITOR").spaces.active.image.name') == "astronaut_normal"
    show(window, "astronaut.png")
    show_sidebar_tab(window)
    window.park_pointer()
    time.sleep(1.0)
    box = window.run('result = region_box("IMAGE_EDITOR", "UI")')
    window.screenshot(screenshots / "panels.png", box=(box[0], box[1] - 8, box[2] + 30, min(box[3], 640)))


def test_escape_cancels_and_the_next_run_works(astronaut_shown, photos):
    window = astronaut_shown
    names = [{"name": f"portrait_{index}.png"} for index in range(8)]
    window.run('log["progress"].clear()')
    assert invoke(window, "face_normals.estimate", source="FILES", directory=str(photos["batch"]) + "/",
                  files=names) == "{'RUNNING_MODAL'}"
    assert window.wait_for('any("Estimating" in text for _, text in log["progress"])', timeout=30)
    x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
    window.key("Escape", x, y)
    wait_job(window, timeout=20)
    assert any("cancelled" in line for line in reports(window)[-3:]), reports(window)[-5:]
    assert not window.run('result = "portrait_7_normal" in bpy.data.images')
    show(window, "astronaut.png")
    window.run('''
if "astronaut_normal" in bpy.data.images:
    bpy.data.images.remove(bpy.data.images["astronaut_normal"])
result = None
''')
    assert invoke(window, "face_normals.estimate") == "{'RUNNING_MODAL'}"
    wait_job(window)
    assert "Made astronaut_normal" in reports(window)[-1]


def test_dragging_in_the_relight_preview_moves_the_light(with_normals):
    window = with_normals
    assert invoke(window, "face_normals.relight_preview") == "{'RUNNING_MODAL'}"   # makes Light 1 if none
    # from the upper left, whatever an earlier test left: the drag below ends right of the middle
    window.run("C.scene.face_normals_relight.lights[0].direction = (-0.6, 0.4, 0.7); result = None")
    before = window.run("result = tuple(C.scene.face_normals_relight.lights[0].direction)")
    start = window.run('result = screen_xy("IMAGE_EDITOR", 0.35, 0.5)')
    end = window.run('result = screen_xy("IMAGE_EDITOR", 0.65, 0.6)')
    window.drag(tuple(start), tuple(end))
    time.sleep(0.3)
    after = window.run("result = tuple(C.scene.face_normals_relight.lights[0].direction)")
    x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
    window.key("Escape", x, y)            # ends the preview
    assert np.abs(np.subtract(after, before)).max() > 0.1, (before, after)
    assert after[0] > 0.05, after        # the drag ended right of the middle: the light is to the right


def test_preview_pixels_match_the_bake(with_normals, folder, screenshots):
    """The preview and the baked <photo>_relit shown in its place, screenshot for screenshot: the
    issue saw the preview sRGB-encoded twice (suit 207,90,50 as 229,154,117)."""
    window = with_normals
    assert invoke(window, "face_normals.relight_preview") == "{'RUNNING_MODAL'}"
    window.run("""
C.scene.face_normals_relight.lights[0].direction = (0.5, 0.3, 0.8)
area_of("IMAGE_EDITOR").tag_redraw()
result = None
""")
    time.sleep(1.5)
    box = window.run('result = region_box("IMAGE_EDITOR")')
    preview = np.asarray(Image.open(window.screenshot(folder / "preview.png", box=box)).convert("RGB"), float)
    x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
    window.key("Escape", x, y)            # ends the preview
    window.run("""
with ui("IMAGE_EDITOR"):
    bpy.ops.face_normals.relight_bake(image_name="astronaut.png")
result = None
""")
    show(window, "astronaut_relit")
    time.sleep(1.5)
    baked = np.asarray(Image.open(window.screenshot(folder / "baked.png", box=box)).convert("RGB"), float)
    height, width = preview.shape[:2]
    # inside the photo, in 16x16 blocks: the two draws filter the 512-pixel photo differently, so
    # edges differ; the tone must not (before the fix the preview was ~40 levels brighter)
    middle = (slice(height // 4, 3 * height // 4), slice(width // 3, 2 * width // 3))
    difference = _blocks(preview[middle], 16) - _blocks(baked[middle], 16)
    message = (f"preview and bake differ: mean {np.abs(difference).mean():.1f}, median "
               f"{np.median(np.abs(difference)):.1f}, brighter by {difference.mean():.1f}; preview "
               f"{preview[middle].mean((0, 1))}, bake {baked[middle].mean((0, 1))}")
    assert np.abs(difference).mean() < 4 and np.median(np.abs(difference)) < 3, message
    assert abs(difference.mean()) < 3, message
    thumbnail = Image.fromarray(preview.astype(np.uint8)).resize((width // 3, height // 3))
    thumbnail.save(screenshots / "relight_preview.png")


def _blocks(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    height, width = pixels.shape[0] // size * size, pixels.shape[1] // size * size
    return pixels[:height, :width].reshape(height // size, size, width // size, size, -1).mean((1, 3))


def _fails_with_a_message(window, pattern: str, operator: str = "face_normals.estimate", **properties):
    """The operator, invoked from the window, ends with an error report matching `pattern`; the
    add-on never held the main thread over STALL seconds, and the UI kept answering."""
    before = len(reports(window))
    outcome = invoke(window, operator, **properties)
    if outcome == "{'RUNNING_MODAL'}":
        wait_job(window, timeout=60)
    new = reports(window)[before:]
    assert any(re.search(pattern, line, re.I) for line in new), new
    gap, slowest, invoke_s = window.run('result = log["max_gap"], log["slowest_step"], log["invoke_s"]')
    timings = f"invoke {invoke_s:.3f} s, slowest modal step {slowest}, longest timer gap {gap:.3f} s"
    print(f"{pattern}: {timings}")
    assert invoke_s < STALL and slowest[0] < STALL, f"the add-on held the main thread: {timings}"
    assert gap < ANSWERING, f"the UI stopped answering: {timings}"
    # Blender shows the error as a "Report: Error" popup where the pointer is; Esc closes it
    x, y = window.run('result = screen_xy("IMAGE_EDITOR", 0.5, 0.5)')
    window.key("Escape", x, y)
    return new


def test_no_backend(astronaut_shown, closed_port):
    window = astronaut_shown
    address = f"tcp://127.0.0.1:{closed_port}"
    set_preferences(window, address=address, auto_start=False, timeout=1.0)
    _fails_with_a_message(window, f"not answering at {re.escape(address)}")


def test_bad_backend_python(astronaut_shown, closed_port):
    window = astronaut_shown
    # backend_source OWN: one's own Backend Python (the default is the add-on's environment)
    set_preferences(window, address=f"tcp://127.0.0.1:{closed_port}", auto_start=True,
                    python_command="/no/such/python3", backend_source="OWN")
    _fails_with_a_message(window, r"Could not start the backend.*/no/such/python3")


def test_no_face(on_backend, photos):
    window = on_backend
    _load(window, photos["grey"])
    show(window, "grey.png")
    _fails_with_a_message(window, r"no face")


def test_not_an_image(on_backend, photos):
    window = on_backend
    _fails_with_a_message(window, r"could not read|cannot read|not .*image", source="FILES",
                          directory=str(photos["text"].parent) + "/", files=[{"name": photos["text"].name}])


def test_relit_portrait_in_material_preview(with_normals, folder, screenshots):
    """Relightable Portrait with the key light to one side, in Material Preview through its camera
    (EEVEE's first shader compile on llvmpipe takes minutes)."""
    window = with_normals
    try:
        _portrait_in_material_preview(window)
        box = window.run('result = region_box("VIEW_3D")')
        pixels = _converged(window, folder, box)
        assert pixels.std() > 20, "the portrait did not draw"
        window.screenshot(screenshots / "relit_portrait.png", box=box, width=480)
        left, top, width, height = box         # the face, at the screen's own size
        face = (left + int(0.34 * width), top + int(0.06 * height), int(0.3 * width), int(0.32 * height))
        window.screenshot(screenshots / "relit_face.png", box=face)
    finally:
        _back_to_the_image_editor(window)


# The astronaut's face in the 512 x 512 photo (docs/relighting.md's boxes): rows, then the columns
# of its left and right side.
FACE_ROWS, FACE_SIDES = (90, 170), ((185, 222), (225, 262))


def test_moving_the_key_light_relights_the_portraits_albedo(with_normals, folder, screenshots):
    """The portrait's base colour is the astronaut's albedo; with the key light on the left its
    face's left side is the brighter one in Material Preview, and with the light turned to the
    right (from Blender's main thread, as a script or the light's rotation fields would) the
    right side is: the scene's light falls on the albedo."""
    window = with_normals
    try:
        _portrait_in_material_preview(window)
        assert window.run("""
tree = bpy.data.materials["Face Portrait astronaut.png Material"].node_tree
bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
result = bsdf.inputs["Base Color"].links[0].from_node.image.name
""") == "astronaut_albedo"
        box = window.run('result = region_box("VIEW_3D")')
        sides = {}
        for light in ("LEFT", "RIGHT"):
            if light == "RIGHT":
                window.run(f"""
from {ADDON} import portrait
portrait.aim_light(bpy.data.objects["Face Portrait astronaut.png Key Light"], portrait.KEY_LIGHT["RIGHT"])
result = None
""")
            pixels = _converged(window, folder, box).mean(-1)
            window.screenshot(screenshots / f"relit_portrait_light_{light.lower()}.png", box=box, width=480)
            sides[light] = [float(pixels[top:bottom, left:right].mean())
                            for top, bottom, left, right in _face_sides_on_screen(window)]
            print(f"key light {light}: the face's left side {sides[light][0]:.1f}, right side "
                  f"{sides[light][1]:.1f} (sRGB levels)")
        (left_lit_left, left_lit_right), (right_lit_left, right_lit_right) = sides["LEFT"], sides["RIGHT"]
        assert left_lit_left > left_lit_right + 5 and right_lit_right > right_lit_left + 5, sides
    finally:
        _back_to_the_image_editor(window)


def _face_sides_on_screen(window) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) in the 3D viewport's region of each side of the face: the
    photo's FACE_ROWS and FACE_SIDES through the card and the camera view onto the screen."""
    return window.run(f"""
from bpy_extras.view3d_utils import location_3d_to_region_2d
from mathutils import Vector
area = area_of("VIEW_3D")
region = next(r for r in area.regions if r.type == "WINDOW")
card = bpy.data.objects["Face Portrait astronaut.png Card"]
def on_screen(column, row):      # photo pixels -> the card (half-size 1, square photo) -> the region
    point = location_3d_to_region_2d(region, area.spaces.active.region_3d,
                                     card.matrix_world @ Vector((column / 256 - 1, 1 - row / 256, 0)))
    return round(point.x), round(region.height - point.y)
result = []
for first, last in {FACE_SIDES!r}:
    (left, top), (right, bottom) = on_screen(first, {FACE_ROWS[0]}), on_screen(last, {FACE_ROWS[1]})
    result.append((top, bottom, left, right))
""")


def _back_to_the_image_editor(window) -> None:
    """The Image Editor back, for the tests that run after this one."""
    window.run("""
for area in bpy.context.window_manager.windows[0].screen.areas:
    if area.type == "VIEW_3D":
        area.type = "IMAGE_EDITOR"
result = None
""")


def _portrait_in_material_preview(window) -> None:
    """The astronaut's Relightable Portrait, key light on the left, in Material Preview through
    its camera, in the area of the Image Editor."""
    window.run("""
area = area_of("IMAGE_EDITOR")
area.spaces.active.image = bpy.data.images["astronaut.png"]
with ui("IMAGE_EDITOR"):
    bpy.ops.face_normals.relightable_portrait(image_name="astronaut.png", light="LEFT")
area.type = "VIEW_3D"
space = area.spaces.active
space.show_region_ui = False
space.overlay.show_overlays = False
space.shading.type = "MATERIAL"
space.shading.use_scene_lights = True
space.shading.use_scene_world = True     # the default world is dim grey: the key light shows
space.region_3d.view_perspective = "CAMERA"   # not view_camera(): a toggle, and the area may be in it
with ui("VIEW_3D"):
    bpy.ops.view3d.view_center_camera()
result = None
""")


def _converged(window, folder, box) -> np.ndarray:
    """The region's pixels once Material Preview has compiled its shaders and its samples have
    converged (EEVEE's viewport is grainy before)."""
    started = time.monotonic()
    time.sleep(5)        # the first compile holds the main thread: the timer answers when it is done
    for _ in range(2):
        assert window.wait_for('not bpy.app.is_job_running("SHADER_COMPILATION")', timeout=600, poll=2)
        time.sleep(5)
    print(f"Material Preview ready after {time.monotonic() - started:.0f} s")
    window.park_pointer()
    previous = None
    for _ in range(40):
        time.sleep(2.0)
        shot = window.screenshot(folder / "portrait.png", box=box)
        pixels = np.asarray(Image.open(shot).convert("RGB"), float)
        if previous is not None and np.abs(pixels - previous).mean() < 0.2:
            break
        previous = pixels
    print(f"Material Preview converged after {time.monotonic() - started:.0f} s")
    return pixels
