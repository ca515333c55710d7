import dataclasses

import numpy as np
import pytest

from backend.training.facekit import TEST_SEED, FaceKit, FaceKitError, held_out_person, training_person
from backend.core import frames
from backend.training.synthetic import (FACE_HEIGHT_CM, UV_SIZE, FaceRenderer, View,
                                        _texels_per_pixel, angles_from_gaze)


@pytest.fixture(scope="module")
def renderer(tiny_facekit):
    return FaceRenderer(FaceKit(tiny_facekit), size=128)


def test_a_sample_is_an_image_unit_normals_and_masks(renderer):
    sample = renderer.training_sample(3)
    assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.float32
    assert 0 <= sample.image.min() and sample.image.max() <= 1
    assert np.allclose(np.linalg.norm(sample.normals, axis=-1), 1, atol=1e-4)
    assert set(np.unique(sample.mask)) <= {0.0, 1.0} and sample.mask.sum() > 100
    assert (sample.valid >= sample.mask).all() or sample.valid.sum() >= sample.mask.sum() * 0.9


def test_normals_follow_the_opengl_camera_convention(renderer):
    """On a sphere, camera-space normals point right on the right, up at the top, toward the
    viewer everywhere visible: x grows with the column, y falls with the row, z > 0 (on the
    face: the torso below it is a cylinder, not a sphere)."""
    for seed in range(4):
        sample = renderer.training_sample(seed)
        rows, cols = np.nonzero(sample.mask > 0)
        n = sample.normals[rows, cols]
        assert np.corrcoef(cols, n[:, 0])[0, 1] > 0.8
        assert np.corrcoef(rows, n[:, 1])[0, 1] < -0.8
        assert np.percentile(n[:, 2], 2) > 0


def degrees_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1, 1)))


def test_view_space_looks_from_the_face_toward_the_camera():
    view = View(np.eye(3), 80.0, 0.7, np.radians([10.0, -8.0]), np.zeros(2))
    toward_camera = -view.face_centre() / np.linalg.norm(view.face_centre())
    assert np.allclose(toward_camera @ view.to_view_space(), [0, 0, 1], atol=1e-6)
    assert np.allclose(view.to_view_space().T @ view.to_view_space(), np.eye(3), atol=1e-6)


def test_frames_turns_the_truth_back_from_where_the_camera_puts_the_face():
    """frames.py (how the pipeline and the add-on go from view space to camera space) finds the
    renderer's line of sight from the face's pixel in the photo and the focal length."""
    view = View(np.eye(3), 80.0, 0.7, np.radians([10.0, -8.0]), np.zeros(2))
    focal = view.fill * 256 * view.distance / FACE_HEIGHT_CM       # as render_view projects
    x, y, z = view.face_centre()
    pixel = (focal * x / -z, -focal * y / -z)        # from the principal point, rows down
    assert pixel[0] > 0 and pixel[1] > 0             # right of and below the centre
    assert np.allclose(frames.face_turn(pixel, focal, (0.0, 0.0)), view.to_view_space(), atol=1e-6)


def test_truth_is_what_the_crop_shows_wherever_the_face_was_in_the_photo(renderer, tiny_facekit):
    """A crop cannot show how far off the optical axis its face was: a head 10 degrees right of and
    8 above the axis, turned to face the camera, looks like one straight ahead, and gets the same
    normals (relative to the optical axis they would differ by 12.8 degrees)."""
    person = training_person(FaceKit(tiny_facekit), 0)
    ahead = View(np.eye(3, dtype=np.float32), 100.0, 0.7, np.zeros(2), np.zeros(2))
    off_axis = dataclasses.replace(ahead, off_axis=np.radians([10.0, 8.0]))
    turned = dataclasses.replace(off_axis, head=off_axis.to_view_space())
    a = renderer.render_view(person, ahead, np.random.default_rng(0))
    b = renderer.render_view(person, turned, np.random.default_rng(0))
    mean_a, mean_b = (s.normals[s.mask > 0].mean(0) for s in (a, b))
    assert degrees_between(mean_a / np.linalg.norm(mean_a), mean_b / np.linalg.norm(mean_b)) < 1.0
    # Pixel by pixel the off-axis view is stretched ~5% by perspective (a pixel or two at the rim).
    both = (a.mask > 0) & (b.mask > 0)
    assert both.sum() > 0.9 * (a.mask > 0).sum()
    assert np.median(degrees_between(a.normals, b.normals)[both]) < 4.0


def test_skin_relief_reaches_the_ground_truth(renderer):
    """The relief bends the true normals: they are not the smooth sphere's, but close to them."""
    sample = renderer.training_sample(5)
    inner = sample.mask > 0
    n = sample.normals
    # second differences of a smooth sphere's normals are tiny; relief makes them larger
    curvature = np.abs(n[2:, 1:-1] - 2 * n[1:-1, 1:-1] + n[:-2, 1:-1]).sum(-1)[inner[1:-1, 1:-1]]
    assert np.percentile(curvature, 90) > 0.01


def test_pixel_footprint_is_measured_in_relief_texels():
    """A face tile stretched 2.5 texels per pixel one way and 1.5 the other: a pixel covers the
    area of 2.5 x 1.5 texels (side ~1.94), whatever lies outside the skin."""
    rows, cols = np.mgrid[0:40, 0:40].astype(np.float32)
    uv = np.stack([cols * 2.5 / UV_SIZE, 1 - rows * 1.5 / UV_SIZE], -1)
    skin = np.zeros((40, 40), bool)
    skin[5:30, 8:35] = True
    uv[~skin] = 0                       # off the skin the UVs are junk
    assert _texels_per_pixel(uv, skin) == pytest.approx(np.sqrt(2.5 * 1.5), rel=1e-4)


def test_the_iris_is_placed_by_the_angle_from_the_gaze_on_the_eyeball_shell():
    """Points of a 1.2 cm eyeball off the origin at known angles from +z, with a cornea-like
    bulge in front: the angles come back whatever the eyeball's centre."""
    rng = np.random.default_rng(0)
    polar = np.radians(rng.uniform(0, 180, 400))
    azimuth = rng.uniform(0, 2 * np.pi, 400)
    radius = 1.2 + 0.05 * np.clip(np.cos(polar), 0, None) ** 8          # the cornea, ~0.5 mm
    direction = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth),
                          np.cos(polar)], 1)
    shell = np.array([3.1, 3.6, 8.0]) + radius[:, None] * direction
    assert angles_from_gaze(shell) == pytest.approx(np.degrees(polar), abs=1.5)


def test_samples_are_deterministic_per_seed(renderer):
    a, b, c = renderer.training_sample(11), renderer.training_sample(11), renderer.training_sample(12)
    for name in ("image", "normals", "mask", "valid"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.image, c.image)


def test_test_people_are_fixed_and_apart_from_training_seeds(tiny_facekit):
    kit = FaceKit(tiny_facekit)
    first, seed = held_out_person(kit, 0)
    again, _ = held_out_person(kit, 0)
    assert np.array_equal(first.identity, again.identity) and seed >= TEST_SEED
    with pytest.raises(ValueError, match="test people"):
        training_person(kit, TEST_SEED)
    far = np.mean([np.abs(held_out_person(kit, i)[0].identity).mean() for i in range(190, 200)])
    near = np.mean([np.abs(held_out_person(kit, i)[0].identity).mean() for i in range(10)])
    assert far > 1.8 * near   # the last fifth lie at 2-3 sigma


def test_a_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FaceKitError, match="ict_facekit"):
        FaceKit(tmp_path)
