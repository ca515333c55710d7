"""The washed-out look (issue 30, item 7), measured on the astronaut: `python -m
backend.benchmarks.washed_out`.

The shipped estimator's normals, mask, albedo and light of scikit-image's astronaut, relit by the
preview's model (shaders/relight.py, which the GLSL matches to 2/255) with the Relight panel's
settings as they were (specular 0.1, the photo de-lit by Remove Original Shading 0.7) and as they
are (specular 0, the albedo lit), the key light on the left and then on the right
(SHOWCASE_LIGHTS).  Prints the black turtleneck's mean sRGB level (a box of rows 190-224,
columns 195-249; 7/255 in the photo) and how much each side of the face changes between the two
lights (mean absolute sRGB difference, levels of 255, rows 90-169, columns 185-221 and 225-261).
"""
from __future__ import annotations

import numpy as np

from shaders import relight as model

TURTLENECK = (slice(190, 225), slice(195, 250))
FACE_SIDES = {"left side": (slice(90, 170), slice(185, 222)), "right side": (slice(90, 170), slice(225, 262))}
SETTINGS = {"before (specular 0.1, remove shading)": dict(specular=0.1, albedo=False),
            "after (specular 0, albedo lit)": dict(specular=0.0, albedo=True),
            "after, without an albedo (specular 0)": dict(specular=0.0, albedo=False)}


def measure(photo: np.ndarray, normal_map: np.ndarray, mask: np.ndarray, albedo: np.ndarray | None,
            specular: float) -> dict[str, float]:
    """photo sRGB (H, W, 3) in 0..1, normal_map encoded, mask (H, W), albedo linear or None."""
    relit = {}
    for side in ("left", "right"):
        lighting = model.Lighting([model.Light(model.SHOWCASE_LIGHTS[side])],
                                  model.ambient_sh((1, 1, 1), 0.25, 0.3), delight=0.7, specular=specular)
        relit[side] = model.relight(photo, normal_map, lighting, mask, albedo)
    found = {f"turtleneck, light {side}": float(relit[side][TURTLENECK].mean() * 255) for side in relit}
    for name, box in FACE_SIDES.items():
        found[f"{name} change"] = float(np.abs(relit["left"][box] - relit["right"][box]).mean() * 255)
    return found


def main() -> None:
    from skimage import data

    from ..core.options import EstimateOptions
    from ..estimator import Estimator
    from ..estimator.pipeline import Photo

    photo = data.astronaut().astype(np.float32) / 255
    options = EstimateOptions(outputs=("normal", "mask", "albedo"), normals_dtype="float32")
    [result] = Estimator().estimate([Photo(data.astronaut(), options)])
    assert result.normals is not None and result.mask is not None and result.albedo is not None
    normal_map, mask = result.normals * 0.5 + 0.5, result.mask.astype(np.float32) / 255
    albedo = result.albedo.astype(np.float32)
    print(f"the photo's turtleneck: {photo[TURTLENECK].mean() * 255:.1f}/255")
    for label, setting in SETTINGS.items():
        found = measure(photo, normal_map, mask, albedo if setting["albedo"] else None, setting["specular"])
        print(f"{label:<40}" + "  ".join(f"{name} {value:5.1f}" for name, value in found.items()))


if __name__ == "__main__":
    main()
