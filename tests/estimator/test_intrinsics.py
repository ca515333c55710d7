"""The fallback's light and albedo (estimator/intrinsics.py) on a sphere whose light is known."""
import numpy as np

from backend.core import sh
from backend.core.colour import linear_to_srgb
from backend.estimator import intrinsics
from helpers import sphere_normals


def _lit_sphere(colour, direction=(-0.5, 0.4, 0.75), size=96):
    """A sphere of one skin colour under a white light (and a little ambient), sRGB."""
    normals, inside = sphere_normals(size)
    light = sh.project_light(direction, (1, 1, 1))
    light[0] += 0.25 / sh.C4
    shading = np.clip(sh.shade(normals, light), 0, None)
    photo = linear_to_srgb(np.asarray(colour, np.float32) * shading)
    return photo, normals, inside, light


def test_the_light_is_white_and_the_skins_colour_stays_in_the_albedo():
    photo, normals, inside, truth = _lit_sphere((0.6, 0.35, 0.25))
    region = inside & (normals[..., 2] > 0.5)           # the front, as a face's skin is
    light = intrinsics.fit_light(photo, normals, region)
    assert np.allclose(light.coefficients[:, 0], light.coefficients[:, 1])      # one shape, white
    assert sh.direction_error(light.coefficients, truth) < 5
    albedo = intrinsics.albedo(photo, normals, light)
    lit = inside & (sh.shade(normals, light.coefficients)[..., 0] > 0.5)
    chroma = albedo[lit] / albedo[lit].sum(-1, keepdims=True)
    assert np.allclose(chroma, np.array([0.6, 0.35, 0.25]) / 1.2, atol=0.01)    # no rainbows, not grey
