"""Real Blender (the bpy module, headless) with the extension built by `make addon`, installed
through Blender's own extension installer, and a real backend process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def extension_zip() -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "addon" / "build.py")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    from backend import __version__
    return ROOT / "dist" / f"face_normals-{__version__}.zip"      # for Python 3.11, as this venv


@pytest.fixture(scope="session")
def extension_zip_313(extension_zip) -> Path:
    """The same build for Python 3.13 (Blender 5.1+), made by the same `make addon`."""
    return extension_zip.with_name(extension_zip.stem + "-python3.13.zip")


@pytest.fixture(scope="session")
def blender(extension_zip, tmp_path_factory):
    """bpy with the extension installed and enabled in a throw-away user folder."""
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    assert "bl_ext.user_default.face_normals" in bpy.context.preferences.addons
    yield bpy
    from bl_ext.user_default.face_normals.link import LINK
    LINK.close()


@pytest.fixture(scope="session")
def addon(blender):
    import bl_ext.user_default.face_normals as package
    return package


@pytest.fixture(scope="module")
def backend(addon, untrained_weights, tmp_path_factory):
    """A running backend the add-on's preferences point at (auto-start off, so a missing backend
    in other tests stays missing)."""
    from backend.client.launcher import free_loopback_address
    from bl_ext.user_default.face_normals.client.launcher import ServerProcess
    folder = tmp_path_factory.mktemp("backend")
    address = free_loopback_address()
    process = ServerProcess(address=address, log_path=folder / "log",
                            extra_args=("--weights", str(untrained_weights), "--state-file",
                                        str(folder / "state.json")))
    process.start()
    process.wait_ready(120)
    prefs = addon.preferences.get()
    prefs.address, prefs.auto_start, prefs.timeout = address, False, 5.0
    yield process
    process.stop()


@pytest.fixture
def clean_file(blender):
    blender.ops.wm.read_homefile(use_empty=True)
    yield blender


def image_array(image) -> np.ndarray:
    """A Blender image's pixels, (H, W, channels) float32, top row first."""
    width, height = image.size
    buffer = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(buffer)
    return buffer.reshape(height, width, image.channels)[::-1]


def save_photo(array, path: Path) -> Path:
    from PIL import Image
    Image.fromarray(array).save(path)
    return path
