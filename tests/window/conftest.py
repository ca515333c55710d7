"""A real Blender window (tests/window/window.py), the extension built by `make addon` installed
in it, and a backend outside the chroot on loopback (the chroot shares the host's network)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .steps import ADDON
from .window import SetupUnavailable, Window, set_up, tear_down

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chroot() -> Iterator[Path]:
    started = time.monotonic()
    try:
        root = set_up()
    except SetupUnavailable as why:
        pytest.skip(f"no real Blender window here: {why}")
    print(f"window set-up: {time.monotonic() - started:.1f} s")
    yield root
    tear_down()


@pytest.fixture(scope="module")
def folder() -> Path:
    """Under /tmp, which the chroot shares (pytest's tmp_path may be elsewhere); kept, with its
    screenshots and logs, when FACE_NORMALS_WINDOW_KEEP is set."""
    name = tempfile.mkdtemp(prefix="face-normals-window-", dir="/tmp")
    yield Path(name)
    if not os.environ.get("FACE_NORMALS_WINDOW_KEEP"):
        shutil.rmtree(name, ignore_errors=True)
    else:
        print(f"kept {name}")


@pytest.fixture(scope="module")
def screenshots(folder) -> Path:
    """Where the tests put the screenshots the docs show: $FACE_NORMALS_SCREENSHOTS when set
    (`make screenshots`: docs/screenshots), else the run's folder, so a test run leaves the
    checkout as it found it."""
    chosen = os.environ.get("FACE_NORMALS_SCREENSHOTS")
    path = Path(chosen).resolve() if chosen else folder / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def window(chroot, folder):
    window = Window(chroot, folder / "blender")
    yield window
    window.close()


@pytest.fixture(scope="module")
def zip_313(folder) -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "addon" / "build.py")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    from backend import __version__
    built = ROOT / "dist" / f"face_normals-{__version__}-python3.13.zip"
    copy = folder / built.name
    copy.write_bytes(built.read_bytes())
    return copy


@pytest.fixture(scope="module")
def installed(window, zip_313):
    """The extension installed from Install from Disk's operator in the window, its jobs watched
    (control.py), and the layout every test uses: an Image Editor with its sidebar, and the Info
    editor where the reports are read."""
    assert window.run(f"""
bpy.ops.extensions.package_install_files(filepath={str(zip_313)!r}, repo="user_default",
                                         enable_on_install=True)
result = {ADDON!r} in bpy.context.preferences.addons
""", timeout=120)
    window.run("""
watch_addon()
for area in bpy.context.window_manager.windows[0].screen.areas:
    if area.type == "VIEW_3D":
        area.type = "IMAGE_EDITOR"
    elif area.type == "DOPESHEET_EDITOR":
        area.type = "INFO"
area_of("IMAGE_EDITOR").spaces.active.show_region_ui = True
result = None
""")
    window.key("Escape", 700, 950)          # the splash screen's Quick Setup takes the first key
    return window


@pytest.fixture(scope="module")
def backend(folder):
    """`python -m backend serve` from this venv with the shipped model (the portrait's screenshot
    shows real normals) on a free loopback port; its address once it answers."""
    from backend.client import Client
    from backend.client.launcher import free_loopback_address
    address = free_loopback_address()
    with open(folder / "backend.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--bind", address,
                                    "--state-file", str(folder / "state.json")],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        with Client(address, timeout=5) as client:
            while True:
                try:
                    client.info(timeout=5)
                    break
                except Exception:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((folder / "backend.log").read_text()) from None
        yield address
    finally:
        process.terminate()
        process.wait(30)
