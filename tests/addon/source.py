"""The add-on's source tree imported as Blender names it (`face_normals`, not `addon`: under
pytest `addon` is this test folder), for the tests of its bpy-free modules.  Its package
imports no Blender module until `register()`, so this needs no Blender."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ADDON = Path(__file__).resolve().parents[2] / "addon"

if "face_normals" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("face_normals", ADDON / "__init__.py",
                                                   submodule_search_locations=[str(ADDON)])
    assert _spec is not None and _spec.loader is not None
    sys.modules["face_normals"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["face_normals"])
