"""Albedo, light and height from a photo and its normals (estimator/intrinsics.py), and the
outputs that carry them through the CLI and the service."""
import json

import cv2
import numpy as np

from backend.core import sh
from backend.core.colour import linear_to_srgb
from backend.estimator import geometry, intrinsics

from helpers import run_backend, sphere_normals


def test_the_fitted_light_and_albedo_recover_a_lit_sphere():
    normals, inside = sphere_normals(160)
    inside &= normals[..., 2] > 0.2          # not the rim, where a photo's normals are least sure
    light = sh.project_light((0.6, 0.3, 0.75), (1.0, 0.9, 0.8)) + sh.project_light((0, 0, 1), (0.2, 0.2, 0.2))
    skin = np.array([0.6, 0.4, 0.3], np.float32)
    rng = np.random.default_rng(1)
    albedo_truth = skin * (1 + 0.1 * rng.standard_normal(normals.shape[:2]))[..., None]   # freckled
    shading = np.clip(sh.shade(normals, light), 0, None)
    photo = linear_to_srgb(np.clip(albedo_truth * shading, 0, 1))
    fitted = intrinsics.fit_light(photo, normals, inside)
    assert np.degrees(np.arccos(fitted.direction @ sh.dominant_direction(light))) < 3
    albedo = intrinsics.albedo(photo, normals, fitted)
    # brightness and colour balance are not knowable from one photo: right up to a scale per channel
    scale = np.median(albedo[inside] / albedo_truth[inside], axis=0)
    lit = inside & (shading.min(-1) > 0.3)
    assert np.median(np.abs(albedo[lit] / scale - albedo_truth[lit]) / albedo_truth[lit]) < 0.05
    # the photo's shading is gone: the albedo is as even across the sphere as the skin is
    assert albedo[lit].std(0).mean() / albedo[lit].mean() < 0.15 < photo[lit].std(0).mean() / photo[lit].mean()


def test_a_nearly_flat_patch_gives_a_tame_light_not_a_wild_one():
    """Skin normals within a degree of the camera axis (a flat-looking face) barely tell the
    light's bands apart: the fit explains the patch and stays near the light's size, so its
    shading beyond the patch (hair, clothes) and the albedo there stay sane (plain least squares
    gave coefficients a hundred times the light's)."""
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(40, 40, 3)) * [0.015, 0.015, 0] + [0, 0, 1]
    normals = (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).astype(np.float32)
    light = sh.project_light((0.5, 0.3, 0.8), (1.0, 1.0, 1.0)) + sh.project_light((0, 0, 1), (0.3, 0.3, 0.3))
    shading = sh.shade(normals, light) * (1 + 0.02 * rng.standard_normal((40, 40, 1)))
    photo = linear_to_srgb(np.clip(0.5 * shading, 0, 1))
    fitted = intrinsics.fit_light(photo, normals, np.ones((40, 40), bool))
    scaled = light / sh.shade(normals, light).mean()      # the fit's shading averages 1 on the patch
    assert np.abs(fitted.coefficients).max() < 5 * np.abs(scaled).max()
    sideways = sh.shade(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]]), fitted.coefficients)
    assert np.all(np.abs(sideways) < 5)


def test_a_models_crop_lights_make_one_light_of_the_photo():
    """Two crops of a face, turned differently, each light with its own brightness and colour (the
    scale its albedo is known up to): turned back, they are the photo's light, scaled so that the
    skin's shading averages 1 in each channel; and the albedo's scale comes back from the photo
    despite highlights."""
    normals, inside = sphere_normals(64)
    skin = normals[inside & (normals[..., 2] > 0.5)]
    light = sh.project_light((0.5, 0.3, 0.8), (1.0, 1.0, 1.0)) + sh.project_light((0, 0, 1), (0.2, 0.2, 0.2))
    turns = [geometry.crop_turn(geometry.Crop(0, 0, 1, angle)) for angle in (20.0, -35.0)]
    scales = ([2.0, 2.0, 2.0], [0.5, 0.6, 0.4])
    crop_lights = np.stack([sh.rotate(light, turn.T) * scale for turn, scale in zip(turns, scales)])
    found = intrinsics.model_light(crop_lights, turns, [1.0, 3.0], skin)
    assert found is not None and found.source == "model"
    assert np.allclose(found.coefficients, light / sh.shade(skin, light).mean(0), atol=1e-4)
    assert np.allclose(sh.shade(skin, found.coefficients).mean(0), 1, atol=1e-4)
    behind = sh.project_light((0, 0, -1), (1.0, 1.0, 1.0))[None]
    assert intrinsics.model_light(behind, [np.eye(3)], [1.0], skin) is None
    assert intrinsics.model_light(np.zeros((1, 9, 3)), [np.eye(3)], [1.0], skin) is None

    albedo = np.random.default_rng(2).uniform(0.1, 0.4, (len(skin), 3))
    shading = sh.shade(skin, found.coefficients)
    photo = albedo * [1.5, 1.2, 0.9] * shading
    photo[::10] = 0.95                    # highlights
    assert np.allclose(intrinsics.albedo_scale(photo, albedo, shading), [1.5, 1.2, 0.9], rtol=1e-3)


def test_height_is_the_integrated_surface_and_flat_off_the_person():
    side = 200
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    truth = 25 * np.exp(-((cols - 100) ** 2 + (rows - 95) ** 2) / (2 * 22 ** 2))
    slope_x, slope_rows = np.gradient(truth, axis=1), np.gradient(truth, axis=0)
    normals = np.dstack([-slope_x, slope_rows, np.ones_like(truth)])   # +y up: rows grow down
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    person = ((cols - 100) ** 2 + (rows - 95) ** 2 < 80 ** 2).astype(np.float32)
    height = intrinsics.height(normals, person)
    assert height[person == 0].max() == 0
    assert abs(height.max() - 25) < 1.5
    assert np.abs(height - truth)[person > 0].mean() < 0.05 * truth[person > 0].mean() + 0.2
    # a photo larger than the solver's side is solved small and resized: the same surface
    big = intrinsics.height(cv2.resize(normals, (1400, 1400)), cv2.resize(person, (1400, 1400)))
    assert abs(big.max() / 7 - height.max()) < 1.0


def test_predict_writes_every_output(tmp_path, astronaut_path, untrained_weights):
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights,
                       "--outputs", "normal,mask,albedo,height,light", "--exr", "--json")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"normal", "mask", "albedo", "height", "light", "normal_exr", "albedo_exr", "height_exr"} <= set(line)
    albedo = cv2.imread(line["albedo"], cv2.IMREAD_UNCHANGED)
    assert albedo.dtype == np.uint16 and albedo.shape == (512, 512, 3)
    height_png = cv2.imread(line["height"], cv2.IMREAD_UNCHANGED)
    height_exr = cv2.imread(line["height_exr"], cv2.IMREAD_UNCHANGED)
    low, high = line["height_range"]["min"], line["height_range"]["max"]
    assert height_png.dtype == np.uint16 and high > low
    assert np.abs(low + height_png / 65535 * (high - low) - height_exr).max() < 1e-3 * (high - low) + 1e-3
    light = json.loads(open(line["light"]).read())
    assert np.asarray(light["sh"]).shape == (9, 3) and abs(np.linalg.norm(light["direction"]) - 1) < 1e-3


def test_unknown_outputs_are_a_usage_error(tmp_path, astronaut_path, untrained_weights):
    done = run_backend("predict", astronaut_path, "-o", tmp_path, "--weights", untrained_weights,
                       "--outputs", "normal,depth")
    assert done.returncode == 1 and "outputs" in done.stderr and "depth" in done.stderr


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
