"""Batch a folder of face photos into normal maps and relightable portraits, in background Blender.

    blender -b --python addon/examples/batch_portraits.py -- PHOTOS_DIR OUT.blend
    python addon/examples/batch_portraits.py PHOTOS_DIR OUT.blend      # with the bpy module

The Face Normals extension must be installed and enabled, and its preferences must say how to
reach (or start) the backend.  Each photo gets <stem>_normal.png beside it and a portrait
collection in OUT.blend; photos that fail are listed with the reason."""
import sys

import bpy
from bl_ext.user_default.face_normals import api

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
photos, blend = args[0], args[1]

results = api.batch(photos, save="BESIDE", portraits=True)
for name, outcome in results.items():
    print(f"{name}: {outcome.name if hasattr(outcome, 'name') else 'failed: ' + outcome}")
bpy.ops.wm.save_as_mainfile(filepath=blend)
