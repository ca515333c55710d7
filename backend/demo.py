"""The main job on the bundled sample photo (`make demo`): scikit-image's astronaut portrait in,
normal map, face mask and a relit preview out, in out/.  Prints what it wrote and how long each
step took.

Until the Blender add-on and the service land, this runs the backend pipeline on its own.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

OUT = Path("out")
LIGHTS = {"left": (-0.8, 0.2, 0.55), "above": (0.0, 0.8, 0.6), "right": (0.8, 0.2, 0.55)}


def relight(photo: np.ndarray, normals: np.ndarray, mask: np.ndarray, direction, ambient: float = 0.35
            ) -> np.ndarray:
    """Lambertian relighting: divide out a frontal shading estimate, multiply in the new light;
    only inside the face mask."""
    light = np.asarray(direction, np.float32) / np.linalg.norm(direction)
    original = ambient + (1 - ambient) * np.clip(normals[..., 2], 0, 1)
    shading = ambient + (1 - ambient) * np.clip(normals @ light, 0, 1)
    relit = np.clip(photo * (shading / original)[..., None], 0, 1)
    return photo * (1 - mask[..., None]) + relit * mask[..., None]


def main() -> int:
    from PIL import Image
    from skimage import data

    from .estimator import Estimator, WeightsError
    from .estimator.image_io import write_mask_png, write_normal_png

    OUT.mkdir(exist_ok=True)
    steps = []

    def timed(label, action):
        start = time.perf_counter()
        result = action()
        steps.append((label, time.perf_counter() - start))
        return result

    source = OUT / "astronaut.png"
    timed("write the sample photo", lambda: Image.fromarray(data.astronaut()).save(source))
    try:
        estimator = timed("load the model", Estimator)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = timed("estimate normals", lambda: estimator.estimate_file(source))
    normal_path, mask_path = OUT / "astronaut_normal.png", OUT / "astronaut_mask.png"
    timed("write normal map and mask", lambda: (write_normal_png(normal_path, result.normals),
                                                write_mask_png(mask_path, result.mask)))
    photo = np.asarray(Image.open(source), np.float32) / 255
    relit_path = OUT / "astronaut_relit.png"

    def preview():
        views = [relight(photo, result.normals, result.mask, d) for d in LIGHTS.values()]
        Image.fromarray(np.uint8(np.concatenate(views, axis=1) * 255 + 0.5)).save(relit_path)
    timed("relit preview (" + ", ".join(LIGHTS) + ")", preview)

    for path in (source, normal_path, mask_path, relit_path):
        print(f"wrote {path}")
    print(f"{len(result.faces)} face(s) found; timings:")
    for label, seconds in steps:
        print(f"  {label:<40}{seconds * 1000:8.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
