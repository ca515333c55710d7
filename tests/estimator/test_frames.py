"""The normals' frame: view space (relative to the line of sight to each face) and the turn into
a photo's camera space (backend/core/frames.py, shared by the renderer, the estimator and the
add-on)."""
import numpy as np
import pytest

from backend.core import frames
from backend.estimator import Estimator


def test_the_turn_takes_z_to_the_direction_and_is_a_rotation():
    rng = np.random.default_rng(0)
    for direction in [*rng.normal(size=(20, 3)), [0, 0, 1.0], [0, 0, -1.0 + 1e-6], [1e-12, 0, 1]]:
        direction = np.asarray(direction) / np.linalg.norm(direction)
        turn = frames.turn_from_z(direction)
        assert np.allclose(turn @ [0, 0, 1], direction, atol=1e-6)
        assert np.allclose(turn @ turn.T, np.eye(3), atol=1e-6) and np.isclose(np.linalg.det(turn), 1)


def test_line_of_sight_points_from_the_pixel_back_to_the_camera():
    principal, focal = (320.0, 240.0), 500.0
    assert np.allclose(frames.line_of_sight(principal, focal, principal), [0, 0, 1])
    # Right of and below the centre: seen to the right and below, the camera lies left and up of it.
    x, y, z = frames.line_of_sight((820.0, 740.0), focal, principal)
    assert x < 0 and y > 0 and np.isclose(x, -y) and np.isclose(np.degrees(np.arccos(z)), 54.7356, atol=1e-3)


def test_a_35mm_equivalent_focal_length_sets_the_diagonal_angle_of_view():
    # 43.3 mm (the 36 x 24 frame's diagonal) sees 53.1 degrees across the diagonal, whatever the size
    for width, height in ((3000, 2000), (512, 512), (1080, 1920)):
        focal = frames.focal_pixels(np.hypot(36, 24), width, height)
        assert np.isclose(2 * np.degrees(np.arctan(np.hypot(width, height) / 2 / focal)), 53.13, atol=0.01)
    for bad in (0, -5, float("nan"), True, "50", 1e6):
        with pytest.raises(ValueError, match="focal length"):
            frames.check_focal(bad)


def test_each_pixel_turns_with_its_nearest_face():
    normals = np.zeros((10, 40, 3), np.float32)
    normals[..., 2] = 1
    centres, focal, principal = [(5.0, 5.0), (35.0, 5.0)], 20.0, (20.0, 5.0)
    turned = frames.view_to_camera(normals, centres, focal, principal)
    # Facing along its line of sight, each face looks straight at the camera.
    assert np.allclose(turned[:, :20], frames.line_of_sight(centres[0], focal, principal), atol=1e-6)
    assert np.allclose(turned[:, 20:], frames.line_of_sight(centres[1], focal, principal), atol=1e-6)
    assert turned[0, 0, 0] > 0.5 and turned[0, -1, 0] < -0.5
    assert frames.view_to_camera(normals, [], focal, principal) is normals


def test_given_the_focal_length_the_estimator_returns_camera_space(untrained_weights, astronaut):
    """The astronaut's face moved to the left of a wider photo: its line of sight points right,
    so in camera space the face's normals lean toward +x by the turn, pixel for pixel."""
    photo = np.zeros((512, 1536, 3), np.float32)
    photo[:, :512] = astronaut / 255
    estimator = Estimator(untrained_weights, device="cpu")
    view = estimator.normal_map(photo)
    camera = estimator.normal_map(photo, focal_35mm=35)
    assert not view.camera_space and camera.camera_space and view.centres == camera.centres
    [centre] = camera.centres
    assert centre[0] < 512 / 2 + 60
    turn = frames.face_turn(centre, frames.focal_pixels(35, 1536, 512), (768, 256))
    face = camera.mask > 0.999
    assert face.sum() > 5000
    assert np.allclose(camera.normals[face], view.normals[face] @ turn.T.astype(np.float32), atol=2e-3)
    lean = np.degrees(np.arcsin(turn[0, 2]))
    assert lean > 15                        # about 22 degrees: 544 px off the axis, 1,309 px focal
    assert camera.normals[face][:, 0].mean() > view.normals[face][:, 0].mean() + 0.1
