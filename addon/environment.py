"""The backend's private environment, which "Set Up Backend" makes (backend_setup.py): where it
lives (the extension's user folder), its Python, and the marker that says it is ready.

The marker is written last, after the backend made from it has answered `info`; a folder without
it (set-up cancelled, failed, or Blender closed half-way) is never used as a backend."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bpy

MARKER = "face_normals_ready.json"


def user_folder() -> Path:
    """The extension's writable folder (inside Blender's user resources)."""
    return Path(bpy.utils.extension_path_user(__package__, create=True))


def folder() -> Path:
    return user_folder() / "backend"


def log_path() -> Path:
    return user_folder() / "backend-setup.log"


def python(root: Path | None = None) -> Path:
    root = root or folder()
    return root / "Scripts" / "python.exe" if sys.platform == "win32" else root / "bin" / "python"


def marker(root: Path | None = None) -> Path:
    return (root or folder()) / MARKER


def ready_info() -> dict | None:
    """What the finished set-up recorded (Python, torch, device, when), or None when not ready."""
    path = marker()
    if not path.is_file() or not python().exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_marker(info: dict, root: Path | None = None) -> None:
    """Atomically: a reader sees no marker or a whole one."""
    path = marker(root)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(info, indent=1))
    os.replace(temporary, path)


def backend_python(prefs) -> list[str]:
    """The command that runs the backend's Python, as the preferences choose it.  Raises
    ValueError with what to do when the add-on's own environment is chosen but not set up."""
    import shlex
    if prefs.backend_source == "OWN":
        return shlex.split(prefs.python_command) or ["python3"]
    if ready_info() is None:
        raise ValueError("The backend is not set up yet: press Set Up Backend in Edit > Preferences > "
                         "Add-ons > Face Normals (or choose Backend: My Own Python there)")
    return [str(python())]
