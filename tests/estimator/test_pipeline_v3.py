"""The pipeline with a v3 model (estimator/models): its albedo and light reach the result, the light
turns with the photo, and a third crop per face covers the upper body.  No v3 weights ship yet, so
the tests make a tiny one whose light head gives one known light (conftest.py's v3_weights)."""
import math

import numpy as np
import pytest

from backend.core import frames, sh
from backend.core.colour import srgb_to_linear
from backend.core.options import EstimateOptions
from backend.estimator import Estimator, Photo, geometry, intrinsics

from helpers import V3_LIGHT_DIRECTION


@pytest.fixture(scope="module")
def v3(v3_weights):
    return Estimator(v3_weights, model="fast", device="cpu")


@pytest.fixture(scope="module")
def eighth(untrained_weights):
    return Estimator(untrained_weights, device="cpu")


def _degrees(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def _turned_in_the_image(direction: np.ndarray, degrees: float) -> np.ndarray:
    """A direction turned counter-clockwise as seen (x right, y up) by `degrees`."""
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]) @ direction


def test_a_v3_model_gives_its_own_albedo_and_light_at_the_photos_size(v3, eighth, astronaut):
    options = EstimateOptions(outputs=("normal", "mask", "albedo", "light"), normals_dtype="float32")
    [result] = v3.estimate([Photo(astronaut, options)])
    assert result.error is None and result.light is not None and result.light.source == "model"
    [fitted] = eighth.estimate([Photo(astronaut, options)])     # a normals-only model's are fitted
    assert fitted.light.source == "fitted"
    assert result.normals.shape == (512, 512, 3) and result.mask.shape == (512, 512)
    assert result.albedo.shape == (512, 512, 3) and result.albedo.dtype == np.float16
    # what the fitted light guarantees the add-on's relighting: the shading averages 1 on the skin,
    # and there the photo is the albedo times the shading (the albedo's scale read from the photo)
    skin = intrinsics.skin(result.faces, result.mask / 255)
    shading = sh.shade(result.normals[skin], result.light.coefficients)
    assert np.allclose(shading.mean(0), 1, atol=1e-3)
    photo = srgb_to_linear(astronaut / 255)
    explained = np.median(photo[skin] / (result.albedo[skin].astype(np.float32) * shading), axis=0)
    assert np.allclose(explained, 1, atol=0.03)
    # beyond the person the albedo is the photo (no light of hers divided out of the flag)
    assert np.abs(result.albedo[:60, :60] - photo[:60, :60]).max() < 2e-3
    # the Python API's map (training, evaluation) carries them too
    found = v3.normal_map(astronaut.astype(np.float32) / 255)
    assert found.light.source == "model" and found.albedo.shape == (512, 512, 3)


def test_the_light_turns_with_the_photo(v3, astronaut):
    """Each crop's light is turned into the photo's frame with the crop's roll, as its normals are:
    the same photo a quarter turn counter-clockwise gives the light a quarter turn round, and with
    the focal length the light is in camera space like the normals."""
    light_only = EstimateOptions(outputs=("light",))
    upright, quarter = v3.estimate([Photo(astronaut, light_only),
                                    Photo(np.ascontiguousarray(np.rot90(astronaut)), light_only)])
    for result in (upright, quarter):
        expected = _turned_in_the_image(V3_LIGHT_DIRECTION, result.faces[0].roll)
        assert _degrees(result.light.direction, expected) < 0.5
    # the face mesh reads the quarter-turned face's roll within 2 degrees (87.1 against -3.3 + 90),
    # and the light follows the roll it reads
    assert abs(quarter.faces[0].roll - upright.faces[0].roll - 90) < 2
    assert _degrees(quarter.light.direction, _turned_in_the_image(upright.light.direction, 90)) < 2

    [camera] = v3.estimate([Photo(astronaut, EstimateOptions(outputs=("light",), focal_35mm=24.0))])
    focal = frames.focal_pixels(24.0, 512, 512)
    in_view = _turned_in_the_image(V3_LIGHT_DIRECTION, camera.faces[0].roll)
    expected = frames.face_turn(camera.centres[0], focal, (256, 256)) @ in_view
    assert _degrees(camera.light.direction, expected) < 0.5 and _degrees(in_view, expected) > 3


def test_a_v3_model_covers_the_upper_body_below_the_head_and_shoulders_crop(v3, eighth, astronaut):
    """Three crops per face with a v3 model (the 8th model keeps its two): the upper-body crop
    reaches her orange suit below the head-and-shoulders crop, where the 8th model's map is flat,
    down to the photo's bottom edge (its window ends there: nothing fades toward it)."""
    photo = astronaut.astype(np.float32) / 255
    job = v3.prepare(photo)
    [face] = job.faces
    assert job.windows == [geometry.crop_for_face(face), geometry.crop_for_person(face), geometry.crop_for_body(face)]
    assert job.person_masks.shape[0] == 2 and len(eighth.prepare(photo).windows) == 2
    assert [len(crop) for crop in job.crops] == [128, 64, 64]    # the fast size: wider crops at half
    person_crop_bottom = job.windows[1].corners()[:, 1].max()
    assert person_crop_bottom < 330
    suit = (slice(340, 500), slice(150, 260))   # its window ends 5-10 rows above the bottom here
    mine, before = v3.normal_map(photo), eighth.normal_map(photo)
    assert before.mask[suit].max() == 0 and np.allclose(before.normals[suit], [0, 0, 1])
    assert mine.mask[suit].mean() > 0.9
    assert np.degrees(np.arccos(np.clip(mine.normals[suit][..., 2], -1, 1))).mean() > 0.1   # the network's
    # the crops meet without a gap: across the head-and-shoulders crop's lower edge, on her suit
    assert mine.mask[250:340, 200:260].min() > 0.85


def test_auto_runs_the_size_for_the_device_once_its_weights_ship(monkeypatch, tmp_path):
    import torch

    from backend.estimator import models
    monkeypatch.setattr(models, "WEIGHTS_FOLDER", tmp_path)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert models.pick("auto", cpu) is None and models.pick(None, gpu) is None     # none ship: the 8th
    assert models.pick("quality", cpu) == "quality" and models.pick("shipped", cpu) is None
    models.weights_path("fast").write_bytes(b"")
    assert models.pick("auto", cpu) == "fast" and models.pick("auto", gpu) is None
    assert models.pick("auto", cpu, weights_given=True) is None   # a file without a size: the 8th's
    models.weights_path("quality").write_bytes(b"")
    assert models.pick("auto", gpu) == "quality" and models.pick("auto", cpu) == "fast"
    with pytest.raises(ValueError, match="unknown model"):
        models.pick("huge", cpu)
