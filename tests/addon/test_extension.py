"""The extension in real headless Blender, installed from its zip, against a real backend."""
import ast
import os
import signal
import subprocess
import sys
import threading
import zipfile

import cv2
import numpy as np
import pytest

from helpers import sphere_normals

from .conftest import ROOT, image_array, save_photo

pytestmark = pytest.mark.slow   # Blender (the bpy module) with the extension installed


@pytest.mark.parametrize("zip_fixture, tag", [("extension_zip", "cp311"), ("extension_zip_313", "cp313")])
def test_the_zip_holds_the_addon_and_shaders_and_the_backend_only_as_a_wheel(zip_fixture, tag, request):
    from backend import __version__
    archive = zipfile.ZipFile(request.getfixturevalue(zip_fixture))
    names = archive.namelist()
    # for Set Up Backend (test_setup.py): the backend, and pip for a Python without ensurepip
    backend, pip = sorted(n for n in names if n.endswith(".whl") and not n.startswith("wheels/pyzmq"))
    assert backend == f"backend_wheel/face_normals-{__version__}-py3-none-any.whl"
    assert pip.startswith("backend_wheel/pip-") and pip.endswith("-py3-none-any.whl")
    assert "blender_manifest.toml" in names and "__init__.py" in names and "client/protocol.py" in names
    assert "core/frames.py" in names
    assert {"shaders/relight.py", "shaders/relight.frag.glsl", "shaders/relight.vert.glsl"} <= set(names)
    wheels = [n for n in names if n.startswith("wheels/pyzmq")]
    assert len(wheels) == 3 and all(f"-{tag}-{tag}-" in n for n in wheels)   # Linux, Windows, macOS
    manifest = archive.read("blender_manifest.toml").decode()
    assert 'blender_version_min = "4.2.0"' in manifest and 'blender_version_max = "5.3.0"' in manifest
    assert all(f'"./{n}"' in manifest for n in wheels)
    assert not any(n.startswith(("backend/", "tests/")) or n.endswith(".safetensors") or "build.py" in n
                   for n in names)


def test_the_addon_never_imports_torch_or_the_backend(extension_zip):
    """Statically (every import in the zip) and at run time (a fresh Blender that enables it)."""
    with zipfile.ZipFile(extension_zip) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                for node in ast.walk(ast.parse(archive.read(name))):
                    modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                               else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                               else [])
                    assert not any(m.split(".")[0] in ("torch", "backend", "cv2") for m in modules), name
    code = ("import os, sys, tempfile; os.environ['BLENDER_USER_RESOURCES'] = tempfile.mkdtemp(); "
            "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True); "
            f"bpy.ops.extensions.package_install_files(filepath={str(extension_zip)!r}, "
            "repo='user_default', enable_on_install=True); "
            "import bl_ext.user_default.face_normals.operators; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('backend.', 'cv2'))] or "
            "[m for m in sys.modules if m == 'backend']; print('BAD', bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT.parent))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_estimate_makes_a_non_color_unit_normal_map(clean_file, addon, backend, astronaut, tmp_path):
    bpy = clean_file
    photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "astronaut.png")))
    result = bpy.ops.face_normals.estimate(image_name=photo.name, save_mode="PACK")
    assert result == {"FINISHED"}
    normal = bpy.data.images["astronaut_normal"]
    assert tuple(normal.size) == (512, 512) and normal.colorspace_settings.name == "Non-Color"
    assert normal.is_float and normal.packed_file is not None
    vectors = image_array(normal)[..., :3] * 2 - 1
    assert np.abs(np.linalg.norm(vectors, axis=-1) - 1).max() < 1e-3
    mask = image_array(bpy.data.images["astronaut_mask"])[..., 0]
    assert mask.max() == 1.0 and mask[-20:].max() == 0.0          # the face, not the whole photo
    assert np.allclose(vectors[mask == 0], [0, 0, 1], atol=0.02)   # flat away from the face
    # View space, marked with the face's crop centre (fractions of the size) for the projection.
    [(x, y)] = addon.images.view_centres(normal)
    assert 0.3 < x < 0.6 and 0.15 < y < 0.55 and mask[int(y * 512), int(x * 512)] == 1.0
    bpy.ops.face_normals.estimate(image_name=photo.name)          # again: replaced, not duplicated
    assert [i.name for i in bpy.data.images if i.name.startswith("astronaut_normal")] == ["astronaut_normal"]


def test_files_batch_saved_beside_the_photos(clean_file, backend, astronaut, tmp_path):
    bpy = clean_file
    save_photo(astronaut, tmp_path / "one.png")
    save_photo(astronaut[:, ::-1].copy(), tmp_path / "two.jpg")
    result = bpy.ops.face_normals.estimate(source="FILES", directory=str(tmp_path),
                                           files=[{"name": "one.png"}, {"name": "two.jpg"}],
                                           save_mode="BESIDE")
    assert result == {"FINISHED"}
    for stem in ("one", "two"):
        path = tmp_path / f"{stem}_normal.png"
        assert path.exists() and bpy.data.images[f"{stem}_normal"].filepath == str(path)
        stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16 and stored.shape == (512, 512, 3)


def test_apply_to_material_reuses_its_nodes(clean_file):
    bpy = clean_file
    normal = bpy.data.images.new("x_normal", 8, 8, float_buffer=True)
    material = bpy.data.materials.new("Skin")
    material.use_nodes = True
    for _ in range(2):
        assert bpy.ops.face_normals.apply_to_material(image_name=normal.name, material_name="Skin",
                                                      strength=0.8) == {"FINISHED"}
    nodes = material.node_tree.nodes
    textures = [n for n in nodes if n.bl_idname == "ShaderNodeTexImage"]
    maps = [n for n in nodes if n.bl_idname == "ShaderNodeNormalMap"]
    assert len(textures) == 1 and len(maps) == 1
    assert textures[0].image == normal and normal.colorspace_settings.name == "Non-Color"
    assert maps[0].space == "TANGENT" and maps[0].inputs["Strength"].default_value == pytest.approx(0.8)
    bsdf = next(n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Normal"].links[0].from_node == maps[0]
    assert maps[0].inputs["Color"].links[0].from_node == textures[0]


def _render(bpy, path):
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 8
    scene.render.resolution_percentage = 25
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    from PIL import Image
    return np.asarray(Image.open(path).convert("L"), np.float32)


def test_portrait_card_lights_follow_the_camera_space_convention(clean_file, addon, tmp_path):
    """A grey photo with a sphere's camera-space normals: lit from the left, the sphere's left
    half is the bright one; from the right, the right half; from above, the top."""
    bpy = clean_file
    photo = bpy.data.images.new("grey.png", 256, 256)
    photo.pixels.foreach_set(np.full(256 * 256 * 4, 0.6, np.float32))
    normals, inside = sphere_normals(256)
    addon.images.store_results("grey.png", normals, None, save_beside=None)
    assert bpy.ops.face_normals.relightable_portrait(image_name="grey.png", light="LEFT") == {"FINISHED"}
    light = bpy.data.objects["Face Portrait grey.png Key Light"]
    renders = {}
    for side in ("LEFT", "RIGHT", "FRONT"):
        addon.portrait.aim_light(light, addon.portrait.KEY_LIGHT[side])
        renders[side] = _render(bpy, tmp_path / f"{side}.png")
    left, right = renders["LEFT"], renders["RIGHT"]
    w = left.shape[1]
    assert left[:, : w // 3].mean() > 1.3 * left[:, -w // 3:].mean()
    assert right[:, -w // 3:].mean() > 1.3 * right[:, : w // 3].mean()


def test_no_backend_is_a_clear_error_and_changes_nothing(clean_file, addon, astronaut, tmp_path, closed_port):
    bpy = clean_file
    prefs = addon.preferences.get()
    saved = (prefs.address, prefs.auto_start, prefs.timeout)
    prefs.address, prefs.auto_start, prefs.timeout = f"tcp://127.0.0.1:{closed_port}", False, 1.0
    try:
        photo = bpy.data.images.load(str(save_photo(astronaut, tmp_path / "a.png")))
        before = set(bpy.data.images.keys())
        with pytest.raises(RuntimeError, match=f"not answering at tcp://127.0.0.1:{closed_port}.*start it"):
            bpy.ops.face_normals.estimate(image_name=photo.name)
        assert set(bpy.data.images.keys()) == before
    finally:
        prefs.address, prefs.auto_start, prefs.timeout = saved


def test_a_photo_without_a_face_is_reported(clean_file, backend, tmp_path):
    bpy = clean_file
    wall = bpy.data.images.load(str(save_photo(np.full((120, 160, 3), 90, np.uint8), tmp_path / "wall.png")))
    before = set(bpy.data.images.keys())
    with pytest.raises(RuntimeError, match="no face found.*Detect Faces"):
        bpy.ops.face_normals.estimate(image_name=wall.name)
    assert set(bpy.data.images.keys()) == before
    assert bpy.ops.face_normals.estimate(image_name=wall.name, detect=False) == {"FINISHED"}


def test_a_backend_killed_mid_request_is_reported(clean_file, addon, untrained_weights, tmp_path):
    bpy = clean_file
    from backend.client import Client
    from backend.client.launcher import free_loopback_address
    from bl_ext.user_default.face_normals.client.launcher import ServerProcess
    prefs = addon.preferences.get()
    saved = (prefs.address, prefs.auto_start, prefs.timeout)
    address = free_loopback_address()
    process = ServerProcess(address=address, log_path=tmp_path / "log",
                            extra_args=("--weights", str(untrained_weights), "--state-file",
                                        str(tmp_path / "state.json")))
    process.start()
    process.wait_ready(120)
    prefs.address, prefs.auto_start, prefs.timeout = address, False, 2.0

    def kill_once_working():
        """SIGKILL as soon as the server holds one of the batch's requests (24 photos: seconds of
        work left), whatever the machine's speed."""
        with Client(address, timeout=30) as watcher:
            while not watcher.info(timeout=30)["outstanding"]:
                pass
        os.killpg(process.process.pid, signal.SIGKILL)
    try:
        big = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), np.uint8)
        save_photo(big, tmp_path / "big.png")
        before = set(bpy.data.images.keys())
        killer = threading.Thread(target=kill_once_working, daemon=True)
        killer.start()
        with pytest.raises(RuntimeError, match="not answering"):
            bpy.ops.face_normals.estimate(source="FILES", directory=str(tmp_path),
                                          files=[{"name": "big.png"}] * 24)
        assert set(bpy.data.images.keys()) == before
    finally:
        prefs.address, prefs.auto_start, prefs.timeout = saved
        process.stop()


def test_the_documented_batch_script_runs(extension_zip, untrained_weights, astronaut, tmp_path):
    """addon/examples/batch_portraits.py, as the README says to run it, in a fresh Blender whose
    preferences start the backend by themselves."""
    from backend.client.launcher import free_loopback_address
    photos = tmp_path / "photos"
    photos.mkdir()
    save_photo(astronaut, photos / "astronaut.png")
    save_photo(np.full((64, 64, 3), 128, np.uint8), photos / "wall.png")
    setup = ("import os, sys, tempfile; os.environ['BLENDER_USER_RESOURCES'] = tempfile.mkdtemp(); "
             "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True); "
             f"bpy.ops.extensions.package_install_files(filepath={str(extension_zip)!r}, "
             "repo='user_default', enable_on_install=True); "
             "from bl_ext.user_default.face_normals import preferences; p = preferences.get(); "
             f"p.backend_source = 'OWN'; p.python_command = {sys.executable!r}; "
             f"p.address = {free_loopback_address()!r}; "
             f"p.backend_args = '--weights {untrained_weights} --state-file {tmp_path / 's.json'}'; "
             "p.idle_timeout = 60; "
             f"sys.argv = ['batch', '--', {str(photos)!r}, {str(tmp_path / 'out.blend')!r}]; "
             f"exec(open({str(ROOT / 'addon' / 'examples' / 'batch_portraits.py')!r}).read()); "
             "from bl_ext.user_default.face_normals.link import LINK; LINK.close()")
    done = subprocess.run([sys.executable, "-c", setup], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "astronaut.png: astronaut_normal" in done.stdout
    assert "wall.png: failed: " in done.stdout and "no face found" in done.stdout
    assert (photos / "astronaut_normal.png").exists() and (tmp_path / "out.blend").exists()


def test_uninstall_leaves_nothing_registered(extension_zip):
    code = ("import os, sys, tempfile; os.environ['BLENDER_USER_RESOURCES'] = tempfile.mkdtemp(); "
            "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True); "
            f"bpy.ops.extensions.package_install_files(filepath={str(extension_zip)!r}, "
            "repo='user_default', enable_on_install=True); "
            "assert hasattr(bpy.types, 'FACE_NORMALS_PT_image'); "
            "repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == 'user_default'); "
            "bpy.ops.extensions.package_uninstall(repo_directory=repo.directory, pkg_id='face_normals'); "
            "left = [n for n in dir(bpy.types) if n.startswith('FACE_NORMALS')]; "
            "enabled = [a for a in bpy.context.preferences.addons.keys() if 'face_normals' in a]; "
            "print('LEFT', left, enabled); sys.exit(1 if left or enabled else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize("venv, version, zip_fixture", [
    (".venv-bpy42", "4.2", "extension_zip"),          # the oldest supported: 4.2 LTS, Python 3.11
    (".venv-bpy52", "5.2", "extension_zip_313"),      # the newest: 5.2, Python 3.13, numpy 2
])
def test_oldest_and_newest_blender_install_enable_and_use_it(venv, version, zip_fixture, request, backend,
                                                             astronaut, tmp_path):
    """`make test` puts these Blenders (as Python modules, without pyzmq: the zip's wheel must
    provide it) in their own venvs; the 5.0 of this venv runs every other test."""
    python = ROOT / venv / "bin" / "python"
    assert python.exists(), f"run the tests with `make test`: it installs bpy {version} into {venv}"
    photo = save_photo(astronaut, tmp_path / "astronaut.png")
    done = subprocess.run([str(python), str(ROOT / "tests" / "addon" / "smoke_script.py"),
                           str(request.getfixturevalue(zip_fixture)), backend.address, str(photo), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"BLENDER {version}" in done.stdout and "/extensions/" in done.stdout   # zmq from the wheel
    assert "RESULT astronaut_normal (512, 512) Non-Color 3" in done.stdout
    assert float(done.stdout.split("RELIGHT ")[1].split()[0]) >= 0.99
    assert "PROJECTED Sphere_projected_normal (128, 128)" in done.stdout
    assert (tmp_path / "render.png").exists()


def test_with_the_shipped_model_the_lit_side_of_the_face_follows_the_light(clean_file, addon, astronaut,
                                                                            tmp_path):
    """The whole product on a real photo: shipped weights, estimate, portrait, two renders."""
    from backend.client.launcher import free_loopback_address
    from bl_ext.user_default.face_normals import api
    from bl_ext.user_default.face_normals.client.launcher import ServerProcess
    bpy = clean_file
    prefs = addon.preferences.get()
    saved = (prefs.address, prefs.auto_start)
    address = free_loopback_address()
    process = ServerProcess(address=address, log_path=tmp_path / "log",
                            extra_args=("--state-file", str(tmp_path / "state.json")))
    process.start()
    process.wait_ready(120)
    prefs.address, prefs.auto_start = address, False
    try:
        api.estimate(str(save_photo(astronaut, tmp_path / "astronaut.png")))
        api.relightable_portrait("astronaut.png", light="LEFT")
    finally:
        prefs.address, prefs.auto_start = saved
        process.stop()
    mask = image_array(bpy.data.images["astronaut_mask"])[..., 0] > 0.5
    light = bpy.data.objects["Face Portrait astronaut.png Key Light"]
    renders = {}
    for side in ("LEFT", "RIGHT"):
        addon.portrait.aim_light(light, addon.portrait.KEY_LIGHT[side])
        renders[side] = _render(bpy, tmp_path / f"{side}.png")
    small = cv2.resize(mask.astype(np.uint8), renders["LEFT"].shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    columns = np.nonzero(small.any(axis=0))[0]
    middle = (columns.min() + columns.max()) // 2
    left_half, right_half = small.copy(), small.copy()
    left_half[:, middle:] = False
    right_half[:, :middle] = False
    difference = renders["LEFT"] - renders["RIGHT"]    # positive where the left light is brighter
    assert difference[left_half].mean() > 5 and difference[right_half].mean() < -5
