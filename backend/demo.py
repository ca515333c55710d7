"""The main job on the bundled sample photo (`make demo`), through the whole product:

scikit-image's astronaut portrait -> the backend service (started here) -> the Face Normals
extension, built and installed into headless Blender (the bpy module) -> in out/:
astronaut_normal.png, astronaut_mask.png, astronaut_albedo.png, astronaut_height.png (written by
the add-on beside the photo) and astronaut_light.json (the light Estimate kept with the photo),
astronaut.blend (the relightable portrait scene, lit albedo, and a face asset: a card whose
material Apply to Material built from the albedo, normal and height maps), astronaut_render_left.png and
astronaut_render_right.png (Cycles renders with the key light on each side), and
astronaut_relit.png (the photo relit from the left, above and right by the add-on's relight
bake: the preview's relighting model, shaders/relight.py).
Prints what it wrote and how long each step took.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from shaders.relight import SHOWCASE_LIGHTS

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("out")


class Steps:
    def __init__(self):
        self.rows = []

    def __call__(self, label, action):
        start = time.perf_counter()
        result = action()
        self.rows.append((label, time.perf_counter() - start))
        return result


def main() -> int:
    from PIL import Image
    from skimage import data

    from .client import ServerError
    from .client.launcher import ServerProcess, free_loopback_address

    OUT.mkdir(exist_ok=True)
    step = Steps()
    photo_path = (OUT / "astronaut.png").resolve()
    step("write the sample photo", lambda: Image.fromarray(data.astronaut()).save(photo_path))
    package = step("build the extension (make addon)", build_extension)

    address = free_loopback_address()     # a demo beside a test run or another demo: no collision
    server = ServerProcess(address=address, log_path=Path(tempfile.gettempdir()) / "face-normals-demo.log",
                           extra_args=("--state-file", str(Path(tempfile.mkdtemp()) / "state.json")))
    step("start the backend", server.start)
    try:
        info = step("wait for the backend (loads the model)", lambda: server.wait_ready(180))
        print(f"backend: {info['address']} on {info['device']}, weights {info['model']['weights']}")
        bpy, api = step("install and enable the extension in headless Blender",
                        lambda: blender_with_extension(package, address))
        normal = step("estimate normals (add-on -> backend)",
                      lambda: api.estimate(str(photo_path), save="BESIDE"))
        light = step("write the photo's fitted light", lambda: _write_light(bpy, photo_path))
        step("build the relightable portrait", lambda: api.relightable_portrait(str(photo_path)))
        step("build a face asset with Apply to Material", lambda: _face_asset(bpy, normal))
        renders = step("render it lit from the left and right (Cycles)", lambda: _renders(bpy))
        blend = (OUT / "astronaut.blend").resolve()
        step("save the .blend", lambda: bpy.ops.wm.save_as_mainfile(filepath=str(blend)))
        relit = step("relight it from three sides (add-on's bake)", lambda: _relit_views(bpy, api, photo_path))
    except (ServerError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        server.stop()

    for path in (photo_path, OUT / f"{Path(normal.name).stem}.png", OUT / "astronaut_mask.png",
                 OUT / "astronaut_albedo.png", OUT / "astronaut_height.png", light, blend, *renders, relit):
        print(f"wrote {os.path.relpath(path)}")
    print("timings:")
    for label, seconds in step.rows:
        print(f"  {label:<52}{seconds:8.2f} s")
    return 0


def build_extension() -> Path:
    import subprocess
    from . import __version__
    subprocess.run([sys.executable, str(ROOT / "addon" / "build.py")], check=True, stdout=subprocess.DEVNULL)
    # the zip for this Python (addon/build.py makes one per Python that Blender runs on)
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return ROOT / "dist" / f"face_normals-{__version__}{'' if python == '3.11' else '-python' + python}.zip"


def blender_with_extension(package: Path, address: str | None = None):
    """Headless Blender with the extension installed, never starting a backend by itself; its
    preferences point at the one at `address` (the benchmarks that use none give none)."""
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="face-normals-blender-")
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(package), repo="user_default",
                                             enable_on_install=True)
    from bl_ext.user_default.face_normals import api, preferences
    prefs = preferences.get()
    prefs.auto_start, prefs.timeout = False, 10.0
    if address is not None:
        prefs.address = address
    return bpy, api


def _write_light(bpy, photo_path: Path) -> Path:
    """The light Estimate kept on the photo's image, as the CLI writes it (<stem>_light.json)."""
    from bl_ext.user_default.face_normals import images
    path = OUT / f"{photo_path.stem}_light.json"
    path.write_text(bpy.data.images[photo_path.name][images.LIGHT])
    return path


def _face_asset(bpy, normal) -> None:
    """A card beside the portrait whose material Apply to Material builds from all three maps."""
    bpy.ops.mesh.primitive_plane_add(size=2, location=(-3.0, 0.0, 0.0))
    card = bpy.context.object
    card.name = "Astronaut Face Asset"
    material = bpy.data.materials.new("Astronaut Face Asset")
    card.data.materials.append(material)
    bpy.ops.face_normals.apply_to_material(image_name=normal.name, material_name=material.name)


def _renders(bpy) -> list[Path]:
    from bl_ext.user_default.face_normals import portrait
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 32
    scene.render.resolution_percentage = 50
    light = next(o for o in bpy.data.objects if o.name.endswith("Key Light"))
    paths = []
    for side in ("left", "right"):
        portrait.aim_light(light, portrait.KEY_LIGHT[side.upper()])
        path = (OUT / f"astronaut_render_{side}.png").resolve()
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        paths.append(path)
    return paths


def _relit_views(bpy, api, photo_path: Path) -> Path:
    """The photo relit from each of SHOWCASE_LIGHTS by the add-on's bake (the preview's model),
    side by side."""
    from PIL import Image

    views = []
    for direction in SHOWCASE_LIGHTS.values():
        image = api.relit(photo_path.name, [(direction, (1.0, 1.0, 1.0), 1.2)])
        width, height = image.size
        pixels = np.empty(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
        views.append(pixels.reshape(height, width, 4)[::-1, :, :3])
    path = OUT / "astronaut_relit.png"
    Image.fromarray(np.uint8(np.concatenate(views, axis=1) * 255 + 0.5)).save(path)
    return path


if __name__ == "__main__":
    sys.exit(main())
