"""A real Blender window (tests/window/window.py), the extension built by `make addon`, and a
backend outside the chroot on loopback (the chroot shares the host's network)."""
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
